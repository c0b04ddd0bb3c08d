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

    The one check every component applies (the language node before encoding, the recorder before an
    instruction reaches a dataset, the sim robot before a reset, the trainer through its encoder), so that
    whatever is recorded can be trained on. Bad text is rejected, never repaired: a silently edited
    instruction would condition the policy on words nobody said.

    Raises InstructionError for non-strings, empty or whitespace-only text, text longer than ``max_chars``
    characters, and text with control characters (other than tab/newline), bidirectional-override
    characters, non-characters or invalid Unicode (lone surrogates).
    """
    return check_text(text, "instruction", max_chars, example="'push the red cube onto the purple square'")


def check_text(text: object, what: str, max_chars: int, example: str = "") -> str:
    """``text`` with surrounding whitespace stripped, or InstructionError naming ``what`` is wrong with it
    (not a string, empty, longer than ``max_chars``, or a character from :func:`invalid_character`)."""
    if not isinstance(text, str):
        raise InstructionError(f"{what} must be text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InstructionError(f"{what} {_preview(text)} is empty" +
                               (f"; publish a sentence such as {example}" if example else ""))
    if len(stripped) > max_chars:
        raise InstructionError(f"{what} is {len(stripped)} characters long ({_preview(stripped)}); "
                               f"the limit is {max_chars}: shorten it" +
                               (" or raise max_instruction_chars" if what == "instruction" else ""))
    for ch in stripped:
        if invalid_character(ch):
            raise InstructionError(f"{what} {_preview(stripped)} contains the invalid character "
                                   f"U+{ord(ch):04X} ({invalid_character(ch)}); send plain text")
    return stripped


# Characters that reorder how text displays (Trojan Source): what a person reads is not what is stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def invalid_character(ch: str) -> str:
    """Why ``ch`` may not appear in an instruction or other recorded text ('' if it may)."""
    category = unicodedata.category(ch)
    if category == "Cc" and ch not in "\t\n":
        return "a control character"
    if category == "Cs":
        return "a lone surrogate, not valid Unicode"
    if ch in _BIDI_CONTROLS:
        return "a bidirectional override"
    code = ord(ch)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return "a Unicode non-character"
    return ""


def check_encoder_id(expected: str, actual: str) -> None:
    """Refuse an embedding made by ``actual`` when the policy was trained with ``expected``."""
    if not expected:
        raise EncoderMismatch("the policy declares no text encoder id; re-export it with its encoder's id")
    if actual != expected:
        raise EncoderMismatch(f"embedding from encoder '{actual}' but the policy was trained with '{expected}'; "
                              f"run the language node with the model of '{expected}' (model_path parameter)")


def _preview(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
