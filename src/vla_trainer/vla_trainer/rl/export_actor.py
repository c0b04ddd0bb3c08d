"""Export a saved SAC agent's actor as a policy artifact, in a process of its own (no ROS).

``python -m vla_trainer.rl.export_actor WEIGHTS MODELS_DIR NAME VERSION --fps F --state-names ... --action-names ...
--encoder-id ID`` loads weights written by SACAgent.save and writes models_dir/name/version through
vla_trainer.export (ONNX checked against torch, golden pair, checksums). The learner node runs it as a child
process: the ONNX export holds Python's global lock for seconds, which would silence the node's heartbeat.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_agent(path: str | Path):
    """A SACAgent with the configs and weights SACAgent.save wrote to ``path``."""
    from safetensors import safe_open

    from vla_trainer.rl.networks import SACNetConfig
    from vla_trainer.rl.sac import SACAgent, SACConfig
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    net = SACNetConfig(**json.loads(meta["net"]))
    agent = SACAgent(net, SACConfig(**json.loads(meta["sac"])))
    agent.load_weights(path)
    return agent


def export_command(weights: Path, models_dir: Path, name: str, version: str, *, fps: float,
                   state_names: list[str], action_names: list[str], encoder_id: str, training: dict) -> list[str]:
    return [sys.executable, "-m", "vla_trainer.rl.export_actor", str(weights), str(models_dir), name, version,
            "--fps", str(fps), "--state-names", *state_names, "--action-names", *action_names,
            "--encoder-id", encoder_id, "--training", json.dumps(training)]


class ExportJob:
    """One export running as a child process; :meth:`poll` says when it is done (raises with its last lines if it
    failed). The learner keeps updating meanwhile."""

    def __init__(self, weights: Path, models_dir: Path, name: str, version: str, **kwargs):
        self.weights, self.spec = Path(weights), f"{name}/{version}"
        self.started = time.perf_counter()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(export_command(weights, models_dir, name, version, **kwargs),
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def poll(self) -> bool:
        code = self.proc.poll()
        if code is None:
            return False
        self.weights.unlink(missing_ok=True)
        self.log.seek(0)
        tail = "\n".join(self.log.read().strip().splitlines()[-5:])
        self.log.close()
        if code != 0:
            raise RuntimeError(f"exporting {self.spec} failed (exit {code}): {tail}")
        return True

    def wait(self, timeout: float = 600.0) -> None:
        self.proc.wait(timeout)
        self.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.weights.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("models_dir")
    ap.add_argument("name")
    ap.add_argument("version")
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--state-names", nargs="+", required=True)
    ap.add_argument("--action-names", nargs="+", required=True)
    ap.add_argument("--encoder-id", required=True)
    ap.add_argument("--training", default="{}")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    agent = load_agent(a.weights)
    artifact, diff = agent.export_actor(Path(a.models_dir), a.name, a.version, fps=a.fps, state_names=a.state_names,
                                        action_names=a.action_names, encoder_id=a.encoder_id,
                                        training=json.loads(a.training))
    print(f"exported {artifact.path} (ONNX vs torch {diff:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
