"""Importing the workspace's library modules changes nothing process-wide; entry points choose thread counts and
offline flags through vla_core.process."""
import subprocess
import sys

PROBE = """
import os, cv2
before_env, before_threads = dict(os.environ), cv2.getNumThreads()
import vla_core.image, vla_core.observation, vla_core.dataset, vla_language.encoder, vla_perception.pipeline
import vla_perception.features
changed = sorted(k for k in set(os.environ) | set(before_env) if os.environ.get(k) != before_env.get(k))
assert not changed, f"importing changed the environment: {changed}"
assert cv2.getNumThreads() == before_threads, "importing changed OpenCV's thread count"
from vla_core.process import configure_process
configure_process(opencv_threads=1)
assert cv2.getNumThreads() == 1 and os.environ["HF_HUB_OFFLINE"] == "1"
print("ok")
"""


def test_imports_have_no_process_wide_side_effects():
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
