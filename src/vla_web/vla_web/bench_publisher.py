"""The robot side of `vla bench web`, in its own process: N cameras of rgb8 frames at a rate, stamped with the
wall clock when published, and the proposed and sent commands and the shield's state at 10 Hz. Every topic is
under /web_bench/: a benchmark must never publish a command a real robot on the same ROS domain would take.

    python -m vla_web.bench_publisher --cameras 2 --rate 30 --width 640 --height 480 --seconds 20
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image

from vla_interfaces.msg import ShieldState
from vla_ros import node_qos

PREFIX = "/web_bench"


def scene(height: int, width: int, k: int) -> np.ndarray:
    """A camera-like frame: a lit table (gradient), a few coloured blocks, sensor noise (JPEG sizes and times close
    to a real camera's; pure noise would be the worst case for JPEG, a flat frame the best)."""
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([150 + 60 * x / width, 140 + 50 * y / height, 120 + 30 * (x + y) / (width + height)], -1)
    for _ in range(6):
        h, w = rng.integers(height // 10, height // 4), rng.integers(width // 10, width // 4)
        top, left = rng.integers(0, height - h), rng.integers(0, width - w)
        img[top:top + h, left:left + w] = rng.integers(0, 256, 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node("web_bench_publisher")
    cams = [node.create_publisher(Image, f"{PREFIX}/cam{i}/image_raw", node_qos.SENSOR_PUB) for i in range(a.cameras)]
    proposed = node.create_publisher(Twist, f"{PREFIX}/policy/cmd_vel", node_qos.COMMAND)
    sent = node.create_publisher(Twist, f"{PREFIX}/cmd_vel", node_qos.COMMAND)
    shield = node.create_publisher(ShieldState, f"{PREFIX}/safety_shield/state", 10)
    frames = [scene(a.height, a.width, k).tobytes() for k in range(4)]
    period, k = 1.0 / a.rate, 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < a.seconds:
            for i, pub in enumerate(cams):
                msg = Image(height=a.height, width=a.width, encoding="rgb8", step=a.width * 3, data=frames[(k + i) % 4])
                msg.header.stamp = node.get_clock().now().to_msg()
                msg.header.frame_id = f"cam{i}"
                pub.publish(msg)
            if k % max(1, round(a.rate / 10)) == 0:
                cmd = Twist()
                cmd.linear.x = 0.1 * np.sin(k * period)
                proposed.publish(cmd)
                cmd.linear.x *= 0.8
                sent.publish(cmd)
                state = ShieldState(active_source="policy", rules=["limit.velocity"], amounts=[0.02])
                state.header.stamp = node.get_clock().now().to_msg()
                shield.publish(state)
            k += 1
            time.sleep(max(0.0, t0 + k * period - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
