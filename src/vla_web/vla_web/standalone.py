"""The web view on its own, beside a graph that is already running (`vla up sim`, a robot), with no profile
change: it configures and activates itself, and its lifecycle services still work.

    python -m vla_web.standalone --ros-args -p use_sim_time:=true [-p port:=8081 -p cameras:="['/camera/top/image_raw']"]

``use_sim_time`` must match the graph's (the sim profiles use simulated time): stamps, commands and latencies are
all read on the node's clock.

Parameters as in params/web_view.yaml (``--ros-args --params-file params/web_view.yaml`` takes them all). Unlike the
profile's web_view, no lifecycle manager watches it: if it stops, nothing else does.
"""
from __future__ import annotations

from lifecycle_msgs.msg import State

from vla_ros.node_base import main_for
from vla_web.web_node import WebViewNode


class StandaloneWebView(WebViewNode):
    """A web_view that brings itself up once, from its first executor turn (not from __init__, which only declares
    parameters)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bring_up = self.create_timer(0.01, self._up)

    def _up(self) -> None:
        self.destroy_timer(self._bring_up)
        if self.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED:
            self.trigger_configure()
        if self.lifecycle_state == State.PRIMARY_STATE_INACTIVE:
            self.trigger_activate()
        if not self.is_active:
            self.get_logger().error(f"the web view did not come up: {self.last_error}")


main = main_for(StandaloneWebView)

if __name__ == "__main__":
    main()
