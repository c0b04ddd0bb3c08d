"""A managed node with no job, for the lifecycle manager's tests: a real ManagedNode in its own process.

    python managed_stub.py NAME [--spin-delay S] [--transition-delay S]

``--spin-delay``: advertise the lifecycle services, then wait S seconds before spinning (a node loading a
model in its constructor). ``--transition-delay``: activating and deactivating take S seconds each. ``~/freeze`` (std_srvs/Trigger, field-less): block this node's only executor
thread for the seconds given by the ``freeze_s`` parameter, as a stuck callback would: no heartbeat, no
service answered meanwhile.
"""
from __future__ import annotations

import argparse
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

from vla_ros.node_base import ManagedNode, node_session


class Stub(ManagedNode):
    def __init__(self, name: str, transition_delay: float = 0.0):
        super().__init__(name)
        self.transition_delay = transition_delay
        self.declare_parameter("freeze_s", 4.0)
        self.create_service(Trigger, "~/freeze", self._freeze)

    def activate(self) -> None:
        time.sleep(self.transition_delay)

    def deactivate(self) -> None:
        time.sleep(self.transition_delay)

    def _freeze(self, request, response):
        time.sleep(self.get_parameter("freeze_s").value)
        response.success = True
        return response


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--spin-delay", type=float, default=0.0)
    parser.add_argument("--transition-delay", type=float, default=0.0)
    args, ros_args = parser.parse_known_args()
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = Stub(args.name, args.transition_delay)
    print("created", flush=True)
    time.sleep(args.spin_delay)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    with node_session(node):
        executor.spin()
    return 0


if __name__ == "__main__":
    sys.exit(main())
