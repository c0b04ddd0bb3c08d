"""The LeRobot half of the round-trip test, run by a Python that has `lerobot` (VLA_LEROBOT_PYTHON), never by the
workspace's: ``python lerobot_side.py COMMAND ARGS...`` prints one JSON object.

  read ROOT                 every frame through LeRobotDataset (default video backend) and delta_timestamps:
                            (episode, frame, colour id, grey id) per frame, and whether action chunks are padded
  append ROOT N_FRAMES      one more episode with LeRobot's writer (episode colour = its index)
  edit ROOT OUT             delete episode 1, split the rest in two, merge the splits: OUT/{deleted,split/*,merged}
  train ROOT                one ACT training step (no pretrained backbone) on the dataset: the loss
  write ROOT N_EPISODES N   a new dataset in LeRobot's default layout (many episodes per file)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "vla_core" / "test"))
import lerobot_layout as F  # noqa: E402  (the fixture's colours: pure numpy, no workspace import)

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

CAMERA = "observation.images.top"


def _ident(chw_uint8) -> tuple[int, int]:
    return F.identify(np.asarray(chw_uint8).transpose(1, 2, 0))


def cmd_read(root: str) -> dict:
    ds = LeRobotDataset("local/ds", root=root, return_uint8=True)
    frames = []
    for i in range(len(ds)):
        item = ds[i]
        frames.append([int(item["episode_index"]), int(item["frame_index"]), *_ident(item[CAMERA])])
    fps = ds.fps
    delta = LeRobotDataset("local/ds", root=root, return_uint8=True,
                           delta_timestamps={CAMERA: [-1 / fps, 0.0], "action": [i / fps for i in range(4)]})
    last = delta[len(delta) - 1]
    return {"frames": frames, "fps": fps, "num_episodes": ds.num_episodes,
            "delta_last_pad": last["action_is_pad"].tolist(), "delta_prev_image": list(_ident(last[CAMERA][0])),
            "stats_keys": sorted(ds.meta.stats["observation.state"])}


def cmd_append(root: str, n: str) -> dict:
    import json as _json
    info = _json.loads((Path(root) / "meta/info.json").read_text())["features"][CAMERA].get("info")
    try:  # encode like the episodes already there (LeRobot 0.5+; its default is AV1), so that merge can concatenate
        from lerobot.configs.video import encoder_config_from_video_info
        ds = LeRobotDataset.resume("local/ds", root=root, rgb_encoder=encoder_config_from_video_info(info))
    except ImportError:
        ds = LeRobotDataset.resume("local/ds", root=root)
    ep = ds.meta.total_episodes
    has_flags = "valid" in ds.features
    for i in range(int(n)):
        frame = {CAMERA: F.frame_image(ep, i), "observation.state": np.array([ep, i, 0.5, 0.5], np.float32),
                 "action": np.array([ep + 0.25, -i], np.float32), "task": "appended by lerobot"}
        if has_flags:
            frame.update(intervention=np.array([False]), late=np.array([False]), valid=np.array([True]))
        ds.add_frame(frame)
    ds.save_episode()
    ds.finalize()
    again = LeRobotDataset("local/ds", root=root)
    return {"num_episodes": again.num_episodes, "num_frames": again.num_frames}


def cmd_edit(root: str, out: str) -> dict:
    from lerobot.datasets.dataset_tools import delete_episodes, merge_datasets, split_dataset
    ds = LeRobotDataset("local/ds", root=root)
    out = Path(out)
    deleted = delete_episodes(ds, [1], output_dir=out / "deleted", repo_id="local/deleted")
    n = deleted.meta.total_episodes
    splits = split_dataset(deleted, {"a": list(range(0, n // 2)), "b": list(range(n // 2, n))},
                           output_dir=out / "split")
    merged = merge_datasets([splits["a"], splits["b"]], "local/merged", output_dir=out / "merged")
    return {"deleted": n, "a": splits["a"].meta.total_episodes, "b": splits["b"].meta.total_episodes,
            "merged": merged.meta.total_episodes}


def cmd_train(root: str) -> dict:
    from lerobot.configs.types import FeatureType
    try:  # LeRobot 0.5+
        from lerobot.utils.feature_utils import dataset_to_policy_features
    except ImportError:  # LeRobot 0.4
        from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    meta = LeRobotDataset("local/ds", root=root).meta
    features = dataset_to_policy_features(meta.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    cfg = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=4, n_action_steps=4,
                    pretrained_backbone_weights=None, dim_model=64, n_heads=2, dim_feedforward=128,
                    n_encoder_layers=1, n_decoder_layers=1, use_vae=False, device="cpu")
    ds = LeRobotDataset("local/ds", root=root, delta_timestamps={"action": [i / meta.fps for i in range(4)]})
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    policy = ACTPolicy(cfg)
    policy.train()
    loss, _ = policy.forward(batch)
    loss.backward()
    torch.optim.AdamW(policy.parameters(), lr=1e-4).step()
    return {"loss": float(loss), "finite": bool(torch.isfinite(loss))}


def cmd_write(root: str, episodes: str, n: str) -> dict:
    features = {
        CAMERA: {"dtype": "video", "shape": [F.H, F.W, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["s0", "s1", "s2", "s3"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]},
    }
    ds = LeRobotDataset.create("local/written", fps=10, features=features, root=root, use_videos=True)
    for ep in range(int(episodes)):
        for i in range(int(n)):
            ds.add_frame({CAMERA: F.frame_image(ep, i), "observation.state": np.array([ep, i, 0.5, 0.5], np.float32),
                          "action": np.array([ep + 0.25, -i], np.float32), "task": f"task number {ep % 3}"})
        ds.save_episode()
    ds.finalize()
    files = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.mp4"))
    return {"episodes": ds.meta.total_episodes, "video_files": files}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    print(json.dumps(globals()[f"cmd_{command}"](*args)))
