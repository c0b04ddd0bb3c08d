"""`vla teleop`: run the teleop node in this terminal (the keyboard device needs it), configured and active."""
from __future__ import annotations

import rclpy
from lifecycle_msgs.msg import State
from rclpy.executors import SingleThreadedExecutor

from vla_ros.node_base import node_session


def run_teleop(args, say=print) -> int:
    from vla_teleop.teleop_node import TeleopNode
    ros_args = ["--ros-args", "-p", f"device:={args.device}", "-r", f"teleop/cmd_vel:={args.topic}"]
    for pair in args.set or []:
        ros_args += ["-p", pair.replace("=", ":=", 1)]
    rclpy.init()
    node = TeleopNode(cli_args=ros_args, use_global_arguments=False)
    with node_session(node):
        node.trigger_configure()
        if node.lifecycle_state != State.PRIMARY_STATE_INACTIVE:
            say(f"error: {node.last_error}")
            return 1
        node.trigger_activate()
        topic = "teleop/cmd" if node.device.COMMANDS_JOINTS else args.topic  # arm devices: the joint command
        say(f"teleop ({args.device}) publishing on {node.resolve_topic_name(topic)}; Ctrl-C to stop")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    return 0
