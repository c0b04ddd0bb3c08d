"""A managed node whose callbacks raise on request, run as its own process by test_node_base.py:
``python raising_node.py``. A String "boom" on /raising/in raises in the subscription; ~/boom raises in a service."""
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_ros.node_base import ManagedNode, run_node


class RaisingNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("raising_node", **kwargs)
        self.received = 0

    def configure(self, params):
        self.echo = self.create_lifecycle_publisher(String, "/raising/echo", 10)
        self.create_subscription(String, "/raising/in", self._on_msg, 10)
        self.create_service(Trigger, "~/boom", self._on_boom)

    def _on_msg(self, msg):
        if msg.data == "boom":
            raise RuntimeError("a bug in a subscription callback")
        self.echo.publish(msg)

    def _on_boom(self, request, response):
        raise ZeroDivisionError("a bug in a service callback")


if __name__ == "__main__":
    raise SystemExit(run_node(RaisingNode))
