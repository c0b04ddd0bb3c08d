"""A synthetic robot for `vla bench recorder`: /clock plus one rgb8 camera, joint states, the command sent
and the intervention flag, all at ``--fps`` in simulated time, ``--rtf`` times faster than real time.

Frames carry stamps k / fps (k = 0, 1, ...). After ``--frames`` frames it stops publishing and prints one JSON
line with the last k, then idles until interrupted (so that subscribers see no disconnection).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from rclpy.clock import Clock, ClockType
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from vla_interfaces.msg import Intervention
from vla_ros import node_qos
from vla_ros.convert import seconds_to_time
from vla_ros.node_base import node_session, spin_until_signal

JOINTS = ["joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6"]


def frames(height: int, width: int, n: int = 60) -> list[bytes]:
    """``n`` distinct camera-like images (gradients, a moving block and per-frame sensor noise, so that the
    encoder sees what a real camera gives it rather than identical pixels), precomputed."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.stack([(x * 255 // width + 4 * i) % 256, y * 255 // height, np.full_like(x, 128)], -1)
        angle = i / n * 2 * math.pi
        cx, cy = int(width / 2 + width / 3 * math.cos(angle)), int(height / 2 + height / 3 * math.sin(angle))
        img[max(cy - 30, 0):cy + 30, max(cx - 30, 0):cx + 30] = (220, 40, 40)
        noisy = img + rng.normal(0.0, 3.0, img.shape)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8).tobytes())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--rtf", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=9000)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--wait-subscribers", type=int, default=0, help="start once the camera has this many")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = rclpy.create_node("bench_robot")
    images = frames(args.height, args.width)
    pubs = {
        "clock": node.create_publisher(ClockMsg, "/clock", node_qos.CLOCK),
        "image": node.create_publisher(Image, "camera/top/image_raw", node_qos.SENSOR_PUB),
        "joints": node.create_publisher(JointState, "joint_states", node_qos.SENSOR_PUB),
        "cmd": node.create_publisher(Twist, "cmd_vel", node_qos.COMMAND),
        "flag": node.create_publisher(Intervention, "teleop/intervention", 10),
        "instruction": node.create_publisher(String, "instruction", node_qos.LATCHED),
    }
    pubs["instruction"].publish(String(data="pick up the red block"))
    state = {"k": 0, "done": False, "started": args.wait_subscribers == 0}

    def k_started() -> bool:
        if not state["started"] and pubs["image"].get_subscription_count() >= args.wait_subscribers:
            state["started"] = True
        return state["started"]

    def step() -> None:
        if k_started() is False:
            return
        k = state["k"]
        if k >= args.frames:
            if not state["done"]:
                state["done"] = True
                print(json.dumps({"published_frames": k, "last_k": k - 1}), flush=True)
            return
        stamp = seconds_to_time(k / args.fps)
        pubs["clock"].publish(ClockMsg(clock=stamp))
        msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3,
                    data=images[k % len(images)])
        msg.header.stamp, msg.header.frame_id = stamp, "camera_top_optical_frame"
        pubs["image"].publish(msg)
        q = [math.sin(k / args.fps + j) for j in range(len(JOINTS))]
        js = JointState(name=JOINTS, position=q, velocity=[math.cos(k / args.fps + j) for j in range(len(JOINTS))])
        js.header.stamp = stamp
        pubs["joints"].publish(js)
        cmd = Twist()
        cmd.linear.x, cmd.linear.y, cmd.angular.z = 0.1 * q[0], 0.1 * q[1], 0.1 * q[2]
        pubs["cmd"].publish(cmd)
        flag = Intervention(active=(k // 90) % 2 == 1, device="bench")
        flag.header.stamp = stamp
        pubs["flag"].publish(flag)
        state["k"] = k + 1

    node.create_timer(1.0 / (args.fps * args.rtf), step, clock=Clock(clock_type=ClockType.STEADY_TIME))
    with node_session(node):
        spin_until_signal(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
