"""MCAP bags -> dataset episodes through the robot contract: frames on the contract's grid, commands matched by
log time, a lost image dropped and counted (and filled, so timestamps stay exact), bags of another clock."""
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetReader
from vla_recorder.bag_to_dataset import BagError, bags_to_dataset
from vla_recorder.mcap_bag import McapBag

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
FPS = CONTRACT.fps


def picture(i: int) -> np.ndarray:
    img = np.zeros((96, 96, 3), np.uint8)
    img[:, :, 0] = (i * 11) % 256
    img[:, :, 1] = 200
    return img


def write_bag(path: Path, frames: int, skip=(), clock_offset: float = 0.0, instruction="push the red block"):
    """A bag as the recorder (or `ros2 bag record`) writes it: images and joint states stamped at k / fps, the
    command logged just after each image, logged at stamp + ``clock_offset``."""
    bag = McapBag(path)
    for topic, kind in (("/camera/top/image_raw", "sensor_msgs/msg/Image"), ("/joint_states",
                        "sensor_msgs/msg/JointState"), ("/cmd_vel", "geometry_msgs/msg/Twist"),
                        ("/instruction", "std_msgs/msg/String")):
        bag.add_topic(topic, kind)
    ns = lambda t: int(round((t + clock_offset) * 1e9))  # noqa: E731
    t0 = 100.0
    bag.write("/instruction", serialize_message(String(data=instruction)), ns(t0 - 0.5))
    for k in range(frames):
        t = t0 + k / FPS
        sec, nsec = int(t), int(round((t - int(t)) * 1e9))
        js = JointState(name=["gantry_x", "gantry_y"], position=[0.01 * k, -0.01 * k], velocity=[0.1, -0.1])
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        bag.write("/joint_states", serialize_message(js), ns(t) + 1000)
        if k not in skip:
            img = Image(height=96, width=96, encoding="rgb8", step=96 * 3, data=picture(k).tobytes())
            img.header.stamp.sec, img.header.stamp.nanosec = sec, nsec
            bag.write("/camera/top/image_raw", serialize_message(img), ns(t) + 2000)
        cmd = Twist()
        cmd.linear.x, cmd.linear.y = 0.01 * k, 0.02
        bag.write("/cmd_vel", serialize_message(cmd), ns(t) + 3000)
    bag.close()
    return path


@pytest.mark.parametrize("clock_offset", [0.0, 1.7e9], ids=["same-clock", "wall-clock-log"])
def test_bags_become_episodes_on_the_contract_grid(tmp_path, clock_offset):
    a = write_bag(tmp_path / "a.mcap", 12, clock_offset=clock_offset)
    b = write_bag(tmp_path / "b.mcap", 9, skip={4}, clock_offset=clock_offset, instruction="push the blue block")
    out = tmp_path / "ds"
    summaries = bags_to_dataset([a, b], out, CONTRACT, success=True)
    assert [(s.frames, s.dropped) for s in summaries] == [(12, 0), (9, 1)]
    reader = DatasetReader(out)
    assert reader.episode(1)["instruction"] == "push the blue block" and reader.episode(0)["success"] is True
    frames = reader.episode_frames(1)
    np.testing.assert_allclose(frames["timestamp"], np.arange(9) / FPS, atol=1e-6)
    assert frames["valid"].tolist() == [True] * 4 + [False] + [True] * 4  # the lost image: filled, invalid
    for row in (0, 3, 5, 8):
        np.testing.assert_allclose(frames["observation.state"][row], [0.01 * row, 0.1, -0.01 * row, -0.1], atol=1e-6)
        # The command in force over [t_k, t_k+1): the one logged just after the image of frame k.
        np.testing.assert_allclose(frames["action"][row], [0.01 * row, 0.02], atol=1e-6)
        assert abs(int(frames["observation.images.top"][row][..., 0].mean()) - (row * 11) % 256) <= 3


def test_a_bag_without_the_contracts_topics_is_named(tmp_path):
    bag = McapBag(tmp_path / "other.mcap")
    bag.add_topic("/scan_text", "std_msgs/msg/String")
    bag.write("/scan_text", serialize_message(String(data="x")), 1)
    bag.close()
    with pytest.raises(BagError, match="no topic for camera top 'camera/top/image_raw'"):
        bags_to_dataset([tmp_path / "other.mcap"], tmp_path / "ds", CONTRACT)
    no_text = write_bag(tmp_path / "a.mcap", 3, instruction="")
    with pytest.raises(BagError, match="pass --instruction"):
        bags_to_dataset([no_text], tmp_path / "ds2", CONTRACT)


def test_vla_dataset_from_bag_command(tmp_path):
    import subprocess
    bag = write_bag(tmp_path / "a.mcap", 6)
    out = tmp_path / "ds"
    proc = subprocess.run(["vla", "dataset", "from-bag", str(bag), "--out", str(out), "--contract",
                           str(WS / "params/robots/tabletop_sim.yaml"), "--instruction", "push the green block"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "episode 0: 6 frames (0 dropped" in proc.stdout
    assert DatasetReader(out).episode(0)["instruction"] == "push the green block"
    proc = subprocess.run(["vla", "dataset", "check", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and '"problems": []' in proc.stdout
    proc = subprocess.run(["vla", "dataset", "import", str(tmp_path / "nothing"), str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is not a dataset" in proc.stderr
