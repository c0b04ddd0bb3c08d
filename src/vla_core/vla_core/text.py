"""Instruction text and text-encoder identity: shared by the language node, the recorder, the trainer
and the policy, so that every one of them accepts the same instructions and the same encoder.

An encoder id names the model and, only where it matters numerically, the variant:
``sentence-transformers/all-MiniLM-L6-v2``. The torch (sentence-transformers) and ONNX (onnxruntime) paths
of one model agree to within :data:`EMBEDDING_TOLERANCE` (checked when the ONNX file is exported), so they
share one id; a quantised export, which does not, would carry a suffix such as ``@int8``.
"""
from __future__ import annotations

import unicodedata

MAX_INSTRUCTION_CHARS = 512
# Largest absolute difference allowed between two runtimes of one encoder that share an id.
EMBEDDING_TOLERANCE = 1e-4


class InstructionError(ValueError):
    """An instruction that cannot be embedded; the message names the value and what to change."""


class EncoderMismatch(ValueError):
    """An embedding from a different encoder than the one a policy was trained with."""


def normalize_instruction(text: object, max_chars: int = MAX_INSTRUCTION_CHARS) -> str:
    """The instruction as the encoder sees it: surrounding whitespace stripped, nothing else changed.

    Raises InstructionError for non-strings, empty or whitespace-only text, text longer than ``max_chars``
    characters, and text with control characters (other than tab/newline) or invalid Unicode.
    """
    if not isinstance(text, str):
        raise InstructionError(f"instruction must be text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InstructionError(f"instruction {text!r} is empty; publish a sentence such as "
                               "'push the red cube onto the purple square'")
    if len(stripped) > max_chars:
        raise InstructionError(f"instruction is {len(stripped)} characters long ({_preview(stripped)}); "
                               f"the limit is {max_chars}: shorten it or raise max_instruction_chars")
    for ch in stripped:
        category = unicodedata.category(ch)
        if category == "Cs" or (category == "Cc" and ch not in "\t\n"):
            raise InstructionError(f"instruction {_preview(stripped)} contains the invalid character "
                                   f"U+{ord(ch):04X}; send plain text")
    return stripped


def check_encoder_id(expected: str, actual: str) -> None:
    """Refuse an embedding made by ``actual`` when the policy was trained with ``expected``."""
    if not expected:
        raise EncoderMismatch("the policy declares no text encoder id; re-export it with its encoder's id")
    if actual != expected:
        raise EncoderMismatch(f"embedding from encoder '{actual}' but the policy was trained with '{expected}'; "
                              f"run the language node with the model of '{expected}' (model_path parameter)")


def _preview(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
