"""ManagedNode with real rclpy (in process): parameters, lifecycle results, heartbeats, error reasons."""
import threading

import pytest
import rclpy
from lifecycle_msgs.msg import State
from rclpy.executors import SingleThreadedExecutor

from vla_core.errors import ConfigError
from vla_core.params import ParamSpec
from vla_interfaces.msg import Heartbeat
from vla_ros import node_qos
from vla_ros.node_base import ManagedNode


class Demo(ManagedNode):
    PARAMS = (ParamSpec("gain", 1.0, "a gain", range=(0.0, 2.0)),
              ParamSpec("mode", "a", "a mode", choices=("a", "b"), read_only=True))

    def __init__(self, **kwargs):
        super().__init__("demo_node", **kwargs)
        self.calls = []

    def configure(self, params):
        self.calls.append("configure")
        if params["mode"] == "b":
            raise ConfigError("mode 'b' needs a camera; set mode: a")

    def activate(self):
        self.calls.append("activate")

    def deactivate(self):
        self.calls.append("deactivate")

    def cleanup(self):
        self.calls.append("cleanup")


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def make(context, *ros_args):
    return Demo(context=context, cli_args=["--ros-args", *ros_args], use_global_arguments=False)


def test_transitions_call_hooks_in_order(context):
    node = make(context)
    node.trigger_configure()
    node.trigger_activate()
    assert node.is_active and node.params["gain"] == 1.0
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert node.calls == ["configure", "activate", "deactivate", "cleanup"]
    assert node.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED
    node.destroy_node()


def test_configure_failure_cleans_up_and_keeps_the_reason(context):
    node = make(context, "-p", "mode:=b")
    node.trigger_configure()
    assert node.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED
    assert node.calls == ["configure", "cleanup"]
    assert "mode 'b' needs a camera; set mode: a" in node.last_error
    node.destroy_node()


@pytest.mark.parametrize("arg,fragment", [("gain:=5.0", "gain"), ("mode:=c", "'c' is not accepted"),
                                          ("gain:=fast", "gain")])
def test_bad_override_does_not_crash_but_refuses_to_configure(context, arg, fragment):
    node = make(context, "-p", arg)
    node.trigger_configure()
    assert node.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED
    assert fragment in node.last_error and "configure failed" in node.last_error
    assert node.calls == ["cleanup"]
    node.destroy_node()


def test_runtime_parameter_changes_are_checked_and_read_only_enforced(context):
    node = make(context)
    desc = node.describe_parameter("gain")
    assert desc.floating_point_range[0].to_value == 2.0 and "a gain" in desc.description
    result = node.set_parameters([rclpy.parameter.Parameter("gain", value=3.0)])[0]
    assert not result.successful
    assert node.set_parameters([rclpy.parameter.Parameter("gain", value=1.5)])[0].successful
    assert not node.set_parameters([rclpy.parameter.Parameter("mode", value="b")])[0].successful
    node.destroy_node()


def test_heartbeat_carries_state_and_last_error(context):
    node = make(context, "-p", "mode:=b", "-p", "heartbeat_period:=0.05")
    listener = rclpy.create_node("listener", context=context)
    beats = []
    listener.create_subscription(Heartbeat, "/demo_node/heartbeat", beats.append, node_qos.HEARTBEAT)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    node.trigger_configure()
    # Every heartbeat repeats the last error, so waiting only covers discovery (slow on a loaded machine). A beat
    # can fall inside the failed transition (state CONFIGURING, error already set); the one after it settles counts.
    waiter = threading.Event()
    settled = lambda: [b for b in beats if b.last_error and b.state == State.PRIMARY_STATE_UNCONFIGURED]  # noqa: E731
    for _ in range(400):
        if settled():
            break
        waiter.wait(0.05)
    executor.shutdown(timeout_sec=1.0)
    errors = settled()
    assert errors, [(b.state, b.last_error) for b in beats]
    assert errors[-1].node == "/demo_node" and "needs a camera" in errors[-1].last_error
    node.destroy_node()
    listener.destroy_node()
