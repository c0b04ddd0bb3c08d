"""Small, real policy artifacts for tests and benchmarks: a torch model exported to ONNX, written with
vla_core.artifact exactly as the trainer writes its artifacts. ``bias`` sets the constant action the policy
proposes, so a test can tell which policy answered; ``poison`` makes it output NaN."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from vla_core.artifact import Artifact, save_golden, write_artifact

STATE_NAMES = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]


class TinyPolicy(torch.nn.Module):
    """state (1, 4) + language (1, 384) -> action chunk (1, K, 2); ``bias`` marks which policy answered."""

    def __init__(self, chunk: int, bias: float, poison: bool = False, action_dim: int = 2):
        super().__init__()
        self.chunk, self.dim = chunk, action_dim
        self.net = torch.nn.Linear(4 + 384, chunk * action_dim)
        torch.nn.init.zeros_(self.net.weight)
        torch.nn.init.constant_(self.net.bias, bias)
        self.poison = poison

    def forward(self, state, language):
        out = self.net(torch.cat([state, language], dim=1)).view(-1, self.chunk, self.dim)
        return out * float("nan") if self.poison else out


def make_artifact(models: Path, version: str, bias: float, chunk: int = 4, poison: bool = False,
                  action_dim: int = 2, encoder: str = "minilm", execution: str = "receding_horizon",
                  fps: float = 10.0, name: str = "tiny") -> Artifact:
    """Write models/<name>/<version>/ and return it."""
    with tempfile.TemporaryDirectory() as tmp:
        return _write(Path(tmp), models, version, bias, chunk, poison, action_dim, encoder, execution, fps, name)


def _write(work: Path, models: Path, version: str, bias: float, chunk: int, poison: bool, action_dim: int,
           encoder: str, execution: str, fps: float, name: str) -> Artifact:
    model = TinyPolicy(chunk, bias, poison, action_dim).eval()
    state, lang = torch.zeros(1, 4), torch.zeros(1, 384)
    onnx_path = work / "policy.onnx"
    torch.onnx.export(model, (state, lang), str(onnx_path), input_names=["state", "language"],
                      output_names=["action"], dynamo=False, opset_version=17)
    with torch.no_grad():
        golden_out = TinyPolicy(chunk, bias, False, action_dim)(state, lang).numpy()
    save_golden(work / "golden.npz", {"state": state.numpy(), "language": lang.numpy()}, {"action": golden_out})
    manifest = {
        "name": name, "version": version, "policy_type": "mlp", "fps": fps,
        "features": {
            "observation.state": {"dtype": "float32", "shape": [4], "names": STATE_NAMES},
            "observation.language": {"dtype": "float32", "shape": [384], "encoder_id": encoder},
            "action": {"dtype": "float32", "shape": [action_dim], "names": ["vx", "vy"][:action_dim]},
        },
        "action": {"chunk_size": chunk, "execution": execution, "receding_steps": chunk, "ensemble_coeff": 0.01},
        "onnx": {"file": "policy.onnx", "inputs": {"observation.state": "state", "observation.language": "language"},
                 "outputs": {"action": "action"}},
        "golden": {"file": "golden.npz", "atol": 1e-5},
    }
    return write_artifact(models, manifest, {"policy.onnx": onnx_path, "golden.npz": work / "golden.npz"})
