"""Small, real policy artifacts for tests and benchmarks: a torch model exported to ONNX, written with
vla_core.artifact exactly as the trainer writes its artifacts. ``bias`` sets the constant action the policy
proposes, so a test can tell which policy answered; ``poison`` makes it output NaN; ``camera`` adds the top
camera's image as an input; ``seed`` gives random weights, so that the actions depend on every input (the state,
the instruction and the image's mean); ``uncertainty`` adds an uncertainty output equal to |state[0]| (the first
joint's position), so a test steers it through the joint states it publishes; ``history`` T >= 2 makes the state
input the last T states (1, T, 4) and adds the first joint's move over them (its position now minus T-1 ticks
ago) to every action, so a test sees what the history holds. :func:`make_bad_artifact` writes artifacts that must
be refused."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from vla_core.artifact import MANIFEST, Artifact, save_golden, sha256_file, write_artifact
from vla_core.features import ACTION, LANGUAGE, STATE, image_key

STATE_NAMES = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]


class TinyPolicy(torch.nn.Module):
    """state (1, 4) + language (1, 384) [+ image (1, 3, 96, 96)] -> action chunk (1, K, 2); ``bias`` marks which
    policy answered."""

    def __init__(self, chunk: int, bias: float, poison: bool = False, action_dim: int = 2, seed: int | None = None,
                 uncertainty: bool = False):
        super().__init__()
        self.uncertainty = uncertainty
        self.chunk, self.dim = chunk, action_dim
        self.net = torch.nn.Linear(4 + 384, chunk * action_dim)
        torch.nn.init.zeros_(self.net.weight)
        torch.nn.init.constant_(self.net.bias, bias)
        self.image_gain = 0.0
        if seed is not None:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.net.weight.copy_(0.05 * torch.randn(self.net.weight.shape, generator=g))
            self.image_gain = 0.5
        self.poison = poison

    def forward(self, state, language, image=None):
        moved = None
        if state.dim() == 3:  # an observation history (B, T, 4): act on the newest, add the first joint's move
            moved = (state[:, -1, 0] - state[:, 0, 0])[:, None, None]
            state = state[:, -1]
        out = self.net(torch.cat([state, language], dim=1)).view(-1, self.chunk, self.dim)
        if moved is not None:
            out = out + moved
        if image is not None:  # a real input of the graph; it changes the answer only with random weights
            out = out + self.image_gain * image.mean()
        out = out * float("nan") if self.poison else out
        return (out, state[:, 0].abs()) if self.uncertainty else out


def make_artifact(models: Path, version: str, bias: float, chunk: int = 4, poison: bool = False,
                  action_dim: int = 2, encoder: str = "minilm", execution: str = "receding_horizon",
                  fps: float = 10.0, name: str = "tiny", camera: bool = False, seed: int | None = None,
                  uncertainty: bool = False, history: int = 0) -> Artifact:
    """Write models/<name>/<version>/ and return it."""
    with tempfile.TemporaryDirectory() as tmp:
        return _write(Path(tmp), models, version, bias, chunk, poison, action_dim, encoder, execution, fps, name,
                      camera, seed, uncertainty, history)


def _write(work: Path, models: Path, version: str, bias: float, chunk: int, poison: bool, action_dim: int,
           encoder: str, execution: str, fps: float, name: str, camera: bool, seed: int | None,
           uncertainty: bool = False, history: int = 0) -> Artifact:
    model = TinyPolicy(chunk, bias, poison, action_dim, seed, uncertainty).eval()
    outputs = ["action", "uncertainty"] if uncertainty else ["action"]
    state = torch.zeros(1, history, 4) if history >= 2 else torch.zeros(1, 4)
    if history >= 2:  # a golden input whose history moves, so the golden output checks the move is computed
        state[0, :, 0] = torch.linspace(0.0, 0.1, history)
    feeds = {"state": state, "language": torch.zeros(1, 384)}
    if camera:
        feeds["image_top"] = torch.zeros(1, 3, 96, 96)
    onnx_path = work / "policy.onnx"
    torch.onnx.export(model, tuple(feeds.values()), str(onnx_path), input_names=list(feeds),
                      output_names=outputs, dynamo=False, opset_version=17)
    with torch.no_grad():
        golden_out = TinyPolicy(chunk, bias, False, action_dim, seed, uncertainty)(*feeds.values())
    golden_out = golden_out if uncertainty else (golden_out,)
    save_golden(work / "golden.npz", {k: v.numpy() for k, v in feeds.items()},
                {k: v.numpy() for k, v in zip(outputs, golden_out)})
    manifest = {
        "name": name, "version": version, "policy_type": "mlp", "fps": fps,
        "features": {
            STATE: {"dtype": "float32", "shape": [4], "names": STATE_NAMES},
            LANGUAGE: {"dtype": "float32", "shape": [384], "encoder_id": encoder},
            ACTION: {"dtype": "float32", "shape": [action_dim], "names": ["vx", "vy"][:action_dim]},
        },
        "action": {"chunk_size": chunk, "execution": execution, "receding_steps": chunk, "ensemble_coeff": 0.01},
        "onnx": {"file": "policy.onnx", "inputs": {STATE: "state", LANGUAGE: "language"},
                 "outputs": {k: k for k in outputs}},
        "golden": {"file": "golden.npz", "atol": 1e-5},
    }
    if uncertainty:
        manifest["uncertainty"] = {"output": "uncertainty", "kind": "abs_state0", "heads": 0, "units": "m"}
    if history >= 2:
        manifest["history"] = {"n_obs_steps": history, "features": [STATE], "padding": "first"}
    if camera:
        manifest["features"][image_key("top")] = {"dtype": "video", "shape": [96, 96, 3],
                                                          "names": ["height", "width", "channels"]}
        manifest["onnx"]["inputs"][image_key("top")] = "image_top"
    return write_artifact(models, manifest, {"policy.onnx": onnx_path, "golden.npz": work / "golden.npz"})


# Artifacts that must be refused, each with a fragment of the reason (the manifest is not itself checksummed:
# anyone who can write the registry can write these).
BAD_ARTIFACTS = {
    "no_atol": "golden has no atol",
    "features_list": "features must be a mapping",
    "files_list": "files must be a mapping",
    "no_shape": "feature 'observation.state' has no shape",
    "golden_not_zip": "cannot be read as an .npz archive",
    "atol_nan": "golden.atol 'NaN' must be a finite number",
    "name_traversal": "name '../x' may hold only",
}


def make_bad_artifact(models: Path, version: str, case: str) -> Artifact:
    """A tiny artifact at models/tiny/<version>/ spoilt as ``case`` (a key of BAD_ARTIFACTS). Its golden
    outputs do not match its model either, so that a check that lets it through loads a wrong policy."""
    art = make_artifact(models, version, bias=0.3)
    golden = art.path / "golden.npz"
    with np.load(golden) as data:
        arrays = {k: data[k] + (1.0 if k.startswith("output:") else 0.0) for k in data.files}
    np.savez(golden, **arrays)
    m = json.loads((art.path / MANIFEST).read_text())
    m["files"]["golden.npz"] = sha256_file(golden)
    if case == "no_atol":
        del m["golden"]["atol"]
    elif case == "features_list":
        m["features"] = list(m["features"])
    elif case == "files_list":
        m["files"] = list(m["files"])
    elif case == "no_shape":
        del m["features"][STATE]["shape"]
    elif case == "golden_not_zip":
        golden.write_bytes(b"this is not a zip archive, but its checksum is in the manifest")
        m["files"]["golden.npz"] = sha256_file(golden)
    elif case == "atol_nan":
        m["golden"]["atol"] = "NaN"
    elif case == "name_traversal":
        m["name"] = "../x"
    else:
        raise ValueError(f"unknown bad artifact case {case!r}; choose from {', '.join(BAD_ARTIFACTS)}")
    (art.path / MANIFEST).write_text(json.dumps(m))
    return Artifact(art.path, m)
