"""Export a trained policy to a verified artifact: ONNX checked against torch, golden pair, safetensors weights.

The ONNX graph takes one input per feature (``image_<camera>`` (1, 3, H, W) float32 in [0, 1], ``state``,
``language``) and returns ``action`` (1, K, D) in SI units; a policy with an observation history
(policy.n_obs_steps T > 1) takes each camera as (1, T, 3, H, W) and the state as (1, T, S), oldest first, and
the manifest's ``history`` entry names those features (the policy runner keeps their last T values); a policy
trained with ``ensemble_heads`` returns the heads' mean as ``action`` and their disagreement as ``uncertainty`` (1,) (vla_trainer.policies.ensemble), and the
manifest's ``uncertainty`` entry says so. Export fails, writing nothing, when onnxruntime disagrees with torch by
more than ``atol`` on any output.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from vla_core.artifact import Artifact, ArtifactError, save_golden, write_artifact


class _Flat(nn.Module):
    """The policy with positional tensor inputs (cameras in order, state, language) for the ONNX exporter."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy, self.cameras = policy, policy.config.cameras
        self.uncertain = bool(ensemble_heads(policy))

    def forward(self, *args: torch.Tensor):
        n = len(self.cameras)
        inputs = (dict(zip(self.cameras, args[:n])), args[n], args[n + 1])
        return self.policy.forward_with_uncertainty(*inputs) if self.uncertain else self.policy(*inputs)


def ensemble_heads(policy: nn.Module) -> int:
    """How many ensemble heads ``policy`` has (0: one head, no uncertainty output)."""
    return int(getattr(policy.config, "ensemble_heads", 0) or 0)


def example_inputs(config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = config.image_size
    time = (config.n_obs_steps,) if config.n_obs_steps > 1 else ()  # the history's axis
    feeds = {f"image_{cam}": rng.random((1, *time, 3, h, w), dtype=np.float32) for cam in config.cameras}
    feeds["state"] = rng.standard_normal((1, *time, config.state_dim)).astype(np.float32)
    language = rng.standard_normal((1, config.language_dim)).astype(np.float32)
    feeds["language"] = language / np.linalg.norm(language)
    return feeds


def export_artifact(policy: nn.Module, models_dir: Path, name: str, version: str, *, fps: float,
                    state_names: list[str], action_names: list[str], encoder_id: str,
                    execution: str = "temporal_ensemble", ensemble_coeff: float = 0.01,
                    receding_steps: int | None = None, training: dict[str, Any] | None = None,
                    dataset_fingerprint: str = "", atol: float = 1e-4, tensorrt: str = "off",
                    fp16: bool = False) -> tuple[Artifact, float]:
    """Write ``models_dir/name/version`` and return it with the ONNX-vs-torch max abs difference.

    ``tensorrt``: "on" builds a TensorRT engine into the artifact (named by GPU architecture, TensorRT version
    and precision) and fails when it cannot; "auto" builds one when tensorrt and a GPU are present; "off" not.
    """
    import onnxruntime as ort
    config = policy.config
    policy = policy.eval()
    feeds = example_inputs(config)
    names = list(feeds)
    heads = ensemble_heads(policy)
    outputs = ["action", "uncertainty"] if heads else ["action"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "policy.onnx"
        args = tuple(torch.from_numpy(feeds[n]) for n in names)
        with torch.no_grad():
            out = _Flat(policy)(*args)
            expected = dict(zip(outputs, (t.numpy() for t in (out if heads else (out,)))))
            torch.onnx.export(_Flat(policy), args, str(onnx_path), input_names=names, output_names=outputs,
                              dynamo=False, opset_version=17)
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = dict(zip(outputs, session.run(outputs, feeds)))
        diff = max(float(np.max(np.abs(got[k] - expected[k]))) for k in outputs)
        if not np.isfinite(diff) or diff > atol:
            raise ArtifactError(f"ONNX export of {name} disagrees with torch by {diff:.3g} > {atol:g}; not written")
        save_golden(tmp / "golden.npz", feeds, expected)
        save_file({k: v.detach().contiguous() for k, v in policy.state_dict().items()}, str(tmp / "model.safetensors"))
        h, w = config.image_size
        features = {f"observation.images.{cam}": {"dtype": "video", "shape": [h, w, 3]} for cam in config.cameras}
        features["observation.state"] = {"dtype": "float32", "shape": [config.state_dim], "names": state_names}
        features["observation.language"] = {"dtype": "float32", "shape": [config.language_dim],
                                            "encoder_id": encoder_id}
        features["action"] = {"dtype": "float32", "shape": [config.action_dim], "names": action_names}
        inputs = {f"observation.images.{cam}": f"image_{cam}" for cam in config.cameras}
        inputs.update({"observation.state": "state", "observation.language": "language"})
        manifest = {
            "name": name, "version": version, "policy_type": getattr(policy, "type_name", type(policy).__name__),
            "fps": float(fps), "features": features,
            "action": {"chunk_size": config.chunk_size, "execution": execution, "ensemble_coeff": ensemble_coeff,
                       "receding_steps": receding_steps or config.chunk_size},
            "onnx": {"file": "policy.onnx", "inputs": inputs, "outputs": {k: k for k in outputs}, "opset": 17,
                     "max_abs_diff_vs_torch": diff},
            "weights": {"file": "model.safetensors", "config": json.loads(json.dumps(asdict(config)))},
            "golden": {"file": "golden.npz", "atol": atol},
            "training": training or {}, "dataset_fingerprint": dataset_fingerprint,
        }
        if config.n_obs_steps > 1:  # what the policy runner keeps the last values of (vla_policy.runner)
            manifest["history"] = {"n_obs_steps": config.n_obs_steps,
                                   "features": [*(f"observation.images.{cam}" for cam in config.cameras),
                                                "observation.state"],
                                   "padding": "first"}
        if heads:  # what the policy node serves beside the action (vla_policy.runtime reads it)
            manifest["uncertainty"] = {"output": "uncertainty", "kind": "ensemble_std", "heads": heads,
                                       "units": "action std (normalised action units), mean over chunk and dims"}
        files = {"policy.onnx": onnx_path, "golden.npz": tmp / "golden.npz",
                 "model.safetensors": tmp / "model.safetensors"}
        engine = build_engine(onnx_path, tmp, tensorrt, fp16)
        if engine is not None:
            manifest["engines"] = [engine["entry"]]
            files[engine["entry"]["file"]] = engine["path"]
        artifact = write_artifact(models_dir, manifest, files)
    return artifact, diff


def tensorrt_available() -> str:
    """'' when a TensorRT engine can be built here, else the reason it cannot."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt Python package is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return ""


def build_engine(onnx_path: Path, out_dir: Path, mode: str, fp16: bool) -> dict | None:
    """Build a TensorRT engine from the exported ONNX (vla_policy.engines' builder and naming)."""
    if mode == "off":
        return None
    reason = tensorrt_available()
    if reason:
        if mode == "on":
            raise ArtifactError(f"output.tensorrt=on but {reason}; use output.tensorrt=auto or off on this machine")
        return None
    import tensorrt as trt
    from vla_policy.engines import build_tensorrt_engine, tensorrt_engine_name
    built = build_tensorrt_engine(onnx_path, fp16, out_dir / "trt-cache")
    name = tensorrt_engine_name(onnx_path, fp16)
    major, minor = torch.cuda.get_device_capability()
    return {"path": built, "entry": {"kind": "tensorrt", "file": f"engines/{name}", "gpu_arch": f"sm{major}{minor}",
                                     "tensorrt_version": trt.__version__, "precision": "fp16" if fp16 else "fp32"}}
