"""ManagedNode with real rclpy (in process): parameters, lifecycle results, heartbeats, error reasons, callbacks
that raise, throttled logging."""
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_core.errors import ConfigError
from vla_core.params import ParamSpec
from vla_interfaces.msg import Heartbeat
from vla_ros import node_qos
from vla_ros.node_base import ManagedNode, ThrottledLog
from vla_ros.spinning import SpinThread


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

    def on_parameters_changed(self, changed):
        self.calls.append(("changed", dict(changed), self.params["gain"]))
        if changed.get("gain") == 1.9:
            raise ValueError("gain 1.9 resonates; choose another")


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


def test_runtime_parameters_are_stored_unconfigured_and_applied_configured_through_the_hook(context):
    node = make(context)
    gain = rclpy.parameter.Parameter
    assert node.set_parameters([gain("gain", value=1.5)])[0].successful
    assert not any(isinstance(c, tuple) for c in node.calls), "unconfigured: stored, no hook"
    node.trigger_configure()
    assert node.params["gain"] == 1.5  # configure reads what was stored
    assert node.set_parameters([gain("gain", value=1.2)])[0].successful
    assert node.calls[-1] == ("changed", {"gain": 1.2}, 1.2)  # in self.params when the hook runs
    node.trigger_activate()
    refused = node.set_parameters([gain("gain", value=1.9)])[0]
    assert not refused.successful and "gain 1.9 resonates" in refused.reason
    assert node.params["gain"] == 1.2 and node.get_parameter("gain").value == 1.2  # undone everywhere
    assert node.calls[-1] == ("changed", {"gain": 1.2}, 1.2)  # the hook was handed the old value back
    out_of_range = node.set_parameters([gain("gain", value=2.5)])[0]
    assert not out_of_range.successful and "out of range" in out_of_range.reason and node.params["gain"] == 1.2
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.destroy_node()


def test_parameters_fixed_while_configured_are_refused_only_while_configured(context):
    class Fixed(Demo):
        FIXED_WHILE_CONFIGURED = {"use_sim_time": "use_sim_time is fixed while configured"}

    node = Fixed(context=context, cli_args=["--ros-args"], use_global_arguments=False)
    sim_time = rclpy.parameter.Parameter("use_sim_time", value=True)
    assert node.set_parameters([sim_time])[0].successful
    node.trigger_configure()
    refused = node.set_parameters([rclpy.parameter.Parameter("use_sim_time", value=False)])[0]
    assert not refused.successful and "fixed while configured" in refused.reason
    node.trigger_cleanup()
    assert node.set_parameters([rclpy.parameter.Parameter("use_sim_time", value=False)])[0].successful
    node.destroy_node()


def test_heartbeat_carries_state_and_last_error(context):
    node = make(context, "-p", "mode:=b", "-p", "heartbeat_period:=0.05")
    listener = rclpy.create_node("listener", context=context)
    beats = []
    listener.create_subscription(Heartbeat, "/demo_node/heartbeat", beats.append, node_qos.HEARTBEAT)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    spinner = SpinThread(executor).start()
    node.trigger_configure()
    # Every heartbeat repeats the last error, so waiting only covers discovery (slow on a loaded machine). A beat
    # can fall inside the failed transition (state CONFIGURING, error already set); the one after it settles counts.
    waiter = threading.Event()
    settled = lambda: [b for b in beats if b.last_error and b.state == State.PRIMARY_STATE_UNCONFIGURED]  # noqa: E731
    for _ in range(400):
        if settled():
            break
        waiter.wait(0.05)
    assert spinner.stop()
    errors = settled()
    assert errors, [(b.state, b.last_error) for b in beats]
    assert errors[-1].node == "/demo_node" and "needs a camera" in errors[-1].last_error
    node.destroy_node()
    listener.destroy_node()


class Buggy(ManagedNode):
    """A node whose callbacks raise on request: a subscription, a timer, a service and an async service."""

    def __init__(self, **kwargs):
        super().__init__("buggy_node", **kwargs)
        self.received, self.safe_calls = [], []
        self.timer_raises = True

    def configure(self, params):
        self.create_subscription(String, "/buggy/in", self._on_msg, 10)
        self.create_service(Trigger, "~/boom", self._on_boom)
        self.create_service(Trigger, "~/boom_async", self._on_boom_async)
        self.create_timer(0.05, self._on_timer)

    def _on_msg(self, msg):
        if msg.data == "boom":
            raise RuntimeError("bad message")
        self.received.append(msg.data)

    def _on_timer(self):
        if self.timer_raises:
            self.timer_raises = False
            raise KeyError("timer state")

    def _on_boom(self, request, response):
        raise ZeroDivisionError("service bug")

    async def _on_boom_async(self, request, response):
        raise ValueError("async service bug")

    def on_callback_error(self, where, exc):
        self.safe_calls.append(where)


def spin(context, *nodes):
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    return SpinThread(executor).start()


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_an_exception_in_any_callback_is_caught_counted_and_the_node_stays_active(context):
    node = Buggy(context=context, cli_args=["--ros-args", "-p", "heartbeat_period:=0.05"],
                 use_global_arguments=False)
    client_node = rclpy.create_node("buggy_client", context=context)
    diags = []
    client_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    pub = client_node.create_publisher(String, "/buggy/in", 10)
    spinner = spin(context, node, client_node)
    node.trigger_configure()
    node.trigger_activate()
    assert wait(lambda: pub.get_subscription_count() > 0)
    pub.publish(String(data="boom"))
    assert wait(lambda: node.callback_errors["subscription /buggy/in"] == 1)
    pub.publish(String(data="fine"))
    assert wait(lambda: node.received == ["fine"]), "the subscription still works after its callback raised"
    assert wait(lambda: node.callback_errors["timer Buggy._on_timer"] == 1)

    for name, fragment in (("/buggy_node/boom", "ZeroDivisionError: service bug"),
                           ("/buggy_node/boom_async", "ValueError: async service bug")):
        client = client_node.create_client(Trigger, name)
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert wait(future.done), f"{name} answered although its callback raised"
        assert not future.result().success and fragment in future.result().message

    assert spinner.running and node.is_active
    assert sum(node.callback_errors.values()) == 4
    assert set(node.safe_calls) == {"subscription /buggy/in", "timer Buggy._on_timer", "service ~/boom",
                                    "service ~/boom_async"}

    def counted():
        for array in reversed(diags):
            for status in array.status:
                if status.name == "buggy_node: node":
                    return {kv.key: kv.value for kv in status.values}, status
        return None
    assert wait(lambda: counted() and counted()[0]["callback_errors"] == "4", 5)
    values, status = counted()
    assert values["state"] == "active" and status.level == DiagnosticStatus.WARN
    assert values["callback_errors: subscription /buggy/in"] == "1"
    assert spinner.stop()
    node.destroy_node()
    client_node.destroy_node()


def test_guard_keeps_what_rclpy_inspects():
    """rclpy picks a subscription's and a timer's arguments from the callback's signature."""
    import inspect

    try:
        from rclpy.timer import TimerInfo
    except ImportError:  # rclpy 7 (Jazzy) has no TimerInfo: any annotation shows that the guard keeps it
        class TimerInfo:
            pass

    def with_info(msg, info):
        return info

    def timer(info: TimerInfo):
        return info

    async def coro(request, response):
        return response

    class Fake:
        guard = ManagedNode.guard
    guarded = Fake().guard(with_info, "x")
    assert list(inspect.signature(guarded).parameters) == ["msg", "info"]
    assert inspect.signature(Fake().guard(timer, "t")).parameters["info"].annotation is TimerInfo
    assert inspect.iscoroutinefunction(Fake().guard(coro, "c"))


class RecordingLogger:
    """Stands in for the rclpy logger only to read what was logged; the real one is used below too."""

    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(("warning", text))

    def error(self, text):
        self.lines.append(("error", text))


def test_throttled_log_throttles_per_key_and_counts_what_it_held_back():
    now = [0.0]
    log = RecordingLogger()
    throttled = ThrottledLog(log, clock=lambda: now[0])
    assert throttled.warning("a", "first")
    assert not throttled.warning("a", "second")
    assert throttled.error("b", "other key")
    now[0] = 2.5
    assert throttled.warning("a", "third")
    assert log.lines == [("warning", "first"), ("error", "other key"),
                         ("warning", "third (1 more like this in the last 2 s)")]


def test_throttled_log_mixes_severities_and_periods_on_a_real_rclpy_logger(context):
    """rclpy raises 'Logger severity cannot be changed between calls' when one call site changes severity or
    throttle; ThrottledLog is one call site per severity, throttled by key, so any mix is safe."""
    node = rclpy.create_node("throttle_probe", context=context)
    throttled = ThrottledLog(node.get_logger())
    for i in range(3):
        throttled.warning(("topic", i), "a warning", period_s=0.0)
        throttled.error(("topic", i), "an error", period_s=5.0)
        throttled.warning("other", "a warning with another period", period_s=1.0)
    node.get_logger().warning("unthrottled warning elsewhere")
    node.destroy_node()


@pytest.mark.ros
def test_a_node_in_its_own_process_survives_raising_callbacks(context):
    """Across processes: the node's callbacks raise, the process stays up and ACTIVE, and its /diagnostics counts."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("raising_node.py"))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = rclpy.create_node("raising_probe", context=context)
    diags, echoes, beats = [], [], []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    probe.create_subscription(String, "/raising/echo", echoes.append, 10)
    probe.create_subscription(Heartbeat, "/raising_node/heartbeat", beats.append, node_qos.HEARTBEAT)
    pub = probe.create_publisher(String, "/raising/in", 10)
    spinner = spin(context, probe)
    try:
        change = probe.create_client(ChangeState, "/raising_node/change_state")
        assert change.wait_for_service(timeout_sec=20), "the node process did not come up"
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            future = change.call_async(ChangeState.Request(transition=Transition(id=transition)))
            assert wait(future.done, 20) and future.result().success
        assert wait(lambda: pub.get_subscription_count() > 0, 20)
        for data in ("boom", "boom", "fine"):
            pub.publish(String(data=data))
        assert wait(lambda: [m for m in echoes if m.data == "fine"], 20), "the node stopped handling messages"
        boom = probe.create_client(Trigger, "/raising_node/boom")
        assert boom.wait_for_service(timeout_sec=20)
        future = boom.call_async(Trigger.Request())
        assert wait(future.done, 20)
        assert not future.result().success and "ZeroDivisionError" in future.result().message

        def counted():
            for array in reversed(diags):
                for status in array.status:
                    if status.name == "raising_node: node":
                        return {kv.key: kv.value for kv in status.values}
            return {}
        assert wait(lambda: counted().get("callback_errors") == "3", 20), counted()
        assert counted()["callback_errors: subscription /raising/in"] == "2"
        assert proc.poll() is None, proc.communicate()[0]
        n = len(beats)
        assert wait(lambda: len(beats) > n and beats[-1].state == State.PRIMARY_STATE_ACTIVE, 10)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        if spinner.stop():
            probe.destroy_node()
    assert "a bug in a subscription callback" in output, "the caught exception is logged with its text"
