"""The managed-node base every long-running node of the workspace derives from.

The lifecycle contract (ARCHITECTURE.md): ``__init__`` declares parameters only; ``configure`` validates
them, builds the core objects and creates publishers/subscriptions, and on any failure cleans up and
returns FAILURE with a message that says what to fix; INACTIVE never commands; ``activate`` resets stale
state; ``deactivate`` stops output; ``cleanup`` releases everything.

Subclasses implement the plain methods ``configure(params)``, ``activate()``, ``deactivate()`` and
``cleanup()``; this class turns their exceptions into lifecycle results, keeps the reason as
``last_error``, and publishes a :class:`vla_interfaces.msg.Heartbeat` on ``~/heartbeat`` from a
steady-clock timer (so that a paused /clock never looks like a dead node) that the lifecycle manager watches.

A bug must not become an outage: every subscription, timer, service and guard-condition callback created
through the node (``create_subscription`` and friends, rclpy's own parameter services and the heartbeat
included) runs inside a guard. An exception that escapes it is caught, counted per callback, logged
(throttled; the traceback at debug level), and handed to :meth:`ManagedNode.on_callback_error`, where a
command-producing node makes its command path safe; the node stays up in its lifecycle state. A service
whose callback raised answers with its default response (``success=False`` and the reason where the type has
them). Every node reports the counts on /diagnostics as ``<node>: node``. Action servers are created outside
the node's factories: wrap their callbacks with :meth:`ManagedNode.guard`.

rclpy identifies a log call by its call site, and raises when one site changes severity or throttling between
calls (its deprecated ``warn()`` makes every caller one site). :class:`ThrottledLog` (``throttled_warning``,
``throttled_error``) throttles by key instead and is safe to mix with any other logging.

Parameters are declared from the node's :class:`ParamSpec` tuple. ``read_only`` ones (topology) are refused
at run time by rclpy. Every other one may be set at run time (``ros2 param set``): one parameter callback
checks the values against the spec and, while the node is configured, puts them in ``self.params`` and calls
:meth:`ManagedNode.on_parameters_changed` (as generate_parameter_library's refresh), where a node that built
an object from a parameter updates it; a node reads ``self.params[...]`` where it uses a value, never a copy
taken at configure. An unconfigured node only stores the value; configure reads it.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lifecycle_msgs.msg import State
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from vla_core.errors import ConfigError
from vla_core.params import MANAGED_NODE_PARAMS, ParamSpec
from vla_core.process import configure_process
from vla_interfaces.msg import Heartbeat
from vla_ros import node_qos
from vla_ros.node_params import check_set, declare_specs, read_specs
from vla_ros.spinning import spin_once

# Period of the node base's own /diagnostics status when the node declares no diagnostics_period.
NODE_DIAGNOSTICS_PERIOD = 1.0
# A caught callback exception keeps the node's status at WARN this long (steady seconds).
CALLBACK_ERROR_WARN_S = 60.0
MAX_EXCEPTION_CHARS = 500
STATE_LABELS = {State.PRIMARY_STATE_UNCONFIGURED: "unconfigured", State.PRIMARY_STATE_INACTIVE: "inactive",
                State.PRIMARY_STATE_ACTIVE: "active", State.PRIMARY_STATE_FINALIZED: "finalized"}


class ThrottledLog:
    """Logging throttled per key through one rclpy logger, safe to mix with any other logging call.

    rclpy's ``throttle_duration_sec`` is bound to the call site: one site may not change severity or throttle
    between calls. Here each severity is logged from its own line without rclpy's throttle, and throttling is
    by ``key`` (keep keys to a small set, e.g. topic and reason): the first message of a key is logged, later
    ones within ``period_s`` are counted, and the count is added to the next message logged. Thread-safe.
    """

    MAX_KEYS = 1024

    def __init__(self, logger, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[Any, tuple[float, int]] = {}  # key -> (time logged, messages suppressed since)

    def _due(self, key: Any, text: str, period_s: float) -> str | None:
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < period_s:
                self._last[key] = (last[0], last[1] + 1)
                return None
            if len(self._last) >= self.MAX_KEYS:
                self._last.clear()
            self._last[key] = (now, 0)
        if last is not None and last[1]:
            text += f" ({last[1]} more like this in the last {now - last[0]:.0f} s)"
        return text

    def warning(self, key: Any, text: str, period_s: float = 2.0) -> bool:
        """Log ``text`` at WARN unless ``key`` was logged less than ``period_s`` ago; True when logged."""
        text = self._due(key, text, period_s)
        if text is None:
            return False
        self.logger.warning(text)
        return True

    def error(self, key: Any, text: str, period_s: float = 2.0) -> bool:
        text = self._due(key, text, period_s)
        if text is None:
            return False
        self.logger.error(text)
        return True


class ManagedNode(LifecycleNode):
    """A lifecycle node with spec-declared parameters, a heartbeat, error reporting and guarded callbacks."""

    PARAMS: tuple[ParamSpec, ...] = ()
    # Parameters outside the spec (rclpy's own) refused while configured, with the reason to give.
    FIXED_WHILE_CONFIGURED: dict[str, str] = {}

    def __init__(self, node_name: str, **kwargs: Any):
        # Set before rclpy's constructor, which creates the parameter services through create_service.
        self.callback_errors: collections.Counter = collections.Counter()
        self.last_callback_error = ""
        self._last_callback_error_t = float("-inf")
        self._callback_error_lock = threading.Lock()
        self._throttled: ThrottledLog | None = None
        super().__init__(node_name, **kwargs)
        self.params: dict[str, Any] = {}
        self.last_error = ""
        self._startup_problems = declare_specs(self, self.all_params(), check_on_set=False)
        self._specs = {spec.name: spec for spec in self.all_params()}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        period = self.get_parameter("heartbeat_period").value
        self._heartbeat_pub = self.create_publisher(Heartbeat, "~/heartbeat", node_qos.HEARTBEAT)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._heartbeat_timer = self.create_timer(period, self.publish_heartbeat, clock=self._steady)
        self._diag_timer = None
        diag_period = NODE_DIAGNOSTICS_PERIOD
        if self.has_parameter("diagnostics_period"):
            try:
                diag_period = float(self.get_parameter("diagnostics_period").value)
            except (TypeError, ValueError):  # a bad override is reported by configure
                pass
        self._node_diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._node_diag_timer = None
        self._start_node_diagnostics(diag_period)

    def drop_timer(self, timer: Any) -> None:
        """Destroy ``timer`` unless it is None. Returns None, so that ``self._timer = self.drop_timer(self._timer)``
        stops a timer and forgets it in one step, whether or not it was running."""
        if timer is not None:
            self.destroy_timer(timer)

    def _start_node_diagnostics(self, period: float) -> None:
        self.drop_timer(self._node_diag_timer)
        self._node_diag_timer = self.create_timer(max(period, 0.1), self.publish_node_diagnostics,
                                                  clock=self._steady)

    def start_diagnostics(self) -> None:
        """Call ``self._publish_diagnostics`` every ``diagnostics_period`` s of steady time (the wall clock: a
        paused simulation must not silence /diagnostics)."""
        self.stop_diagnostics()
        self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._publish_diagnostics,
                                             clock=self._steady)

    def stop_diagnostics(self) -> None:
        self._diag_timer = self.drop_timer(self._diag_timer)

    # ---- parameters at run time ------------------------------------------------------------------
    def on_parameters_changed(self, changed: dict[str, Any]) -> None:
        """Hook: the run-time parameters ``changed`` (name -> value, checked against the spec and coerced to its
        type) are already in ``self.params``. A node that built an object from one of them updates or rebuilds
        it here; raise ValueError (or ConfigError) to refuse the change, which is then undone and the reason
        returned to the caller. Called only while configured (inactive or active): an unconfigured node stores
        the value and reads it at configure. ``read_only`` parameters never get here (rclpy refuses them).
        The default does nothing: a node that reads ``self.params[...]`` where it uses the value needs none."""

    @property
    def is_configured(self) -> bool:
        return self.lifecycle_state in (State.PRIMARY_STATE_INACTIVE, State.PRIMARY_STATE_ACTIVE)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """The one parameter callback of a managed node: check every value against the spec (type, range,
        choices) and, while configured, apply the set as a whole (``self.params`` and
        :meth:`on_parameters_changed`) or refuse it as a whole."""
        configured = self.is_configured and bool(self.params)
        for q in params:
            if configured and q.name in self.FIXED_WHILE_CONFIGURED:
                return SetParametersResult(successful=False, reason=self.FIXED_WHILE_CONFIGURED[q.name])
        result, changed = check_set(self._specs, params)
        if not result.successful or not configured or not changed:
            return result
        previous = self.params
        self.params = {**previous, **changed}
        try:
            self.on_parameters_changed(changed)
        except Exception as exc:  # noqa: BLE001 - any failure refuses the change and restores the old values
            self.params = previous
            try:  # undo what the hook applied before it refused
                self.on_parameters_changed({k: previous[k] for k in changed})
            except Exception:  # noqa: BLE001 - the old values were accepted once; the refusal is what counts
                pass
            text = str(exc) if isinstance(exc, (ValueError, ConfigError)) else f"{type(exc).__name__}: {exc}"
            self.throttled_warning("parameters", f"parameter change refused: {text}", 1.0)
            return SetParametersResult(successful=False, reason=text[:MAX_EXCEPTION_CHARS])
        if "diagnostics_period" in changed:
            self._start_node_diagnostics(changed["diagnostics_period"])
            if self._diag_timer is not None:
                self.start_diagnostics()
        self.get_logger().info("parameters updated: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))
        return SetParametersResult(successful=True)

    # ---- guarded callbacks ------------------------------------------------------------------------
    def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):
        return super().create_subscription(msg_type, topic, self.guard(callback, f"subscription {topic}"),
                                           qos_profile, **kwargs)

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None, autostart=True):
        return super().create_timer(timer_period_sec, self.guard(callback, f"timer {_callable_name(callback)}"),
                                    callback_group=callback_group, clock=clock, autostart=autostart)

    def create_service(self, srv_type, srv_name, callback, **kwargs):
        return super().create_service(srv_type, srv_name, self.guard(callback, f"service {srv_name}"), **kwargs)

    def create_guard_condition(self, callback, callback_group=None):
        return super().create_guard_condition(self.guard(callback, f"guard condition {_callable_name(callback)}"),
                                              callback_group=callback_group)

    def guard(self, callback: Callable | None, where: str) -> Callable | None:
        """``callback`` wrapped so that an exception escaping it is caught, counted under ``where`` and handed
        to :meth:`on_callback_error` instead of ending the process. Keeps the signature (rclpy inspects it)
        and coroutine functions stay coroutine functions."""
        if callback is None or getattr(callback, "_vla_guarded", False):
            return callback
        if inspect.iscoroutinefunction(callback):
            @functools.wraps(callback)
            async def guarded_async(*args, **kwargs):
                try:
                    return await callback(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - the point of the guard
                    return self._callback_failed(where, exc, args)
            guarded = guarded_async
        else:
            @functools.wraps(callback)
            def guarded(*args, **kwargs):
                try:
                    return callback(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - the point of the guard
                    return self._callback_failed(where, exc, args)
        guarded._vla_guarded = True
        return guarded

    def on_callback_error(self, where: str, exc: Exception) -> None:
        """Hook: an exception escaped the callback ``where`` (already counted and logged). A node that produces
        commands makes its command path safe here, as it does for stale input; the default does nothing."""

    def _callback_failed(self, where: str, exc: Exception, args: tuple) -> Any:
        text = f"{type(exc).__name__}: {exc}"[:MAX_EXCEPTION_CHARS]
        with self._callback_error_lock:
            self.callback_errors[where] += 1
            count = sum(self.callback_errors.values())
            self.last_callback_error = f"{where}: {text}"
            self._last_callback_error_t = time.monotonic()
        try:
            if self.throttled.error(("callback", where), f"{where} raised {text}; the message or event was "
                                    f"dropped and the node stays up ({count} caught so far). This is a bug: "
                                    "please report it with the traceback (logged at debug level)"):
                self.get_logger().debug(f"{where}:\n{traceback.format_exc()}")
            self.on_callback_error(where, exc)
        except Exception as hook_exc:  # noqa: BLE001 - a failing hook must not undo the guard
            with self._callback_error_lock:
                self.callback_errors["on_callback_error"] += 1
            self.throttled.error("on_callback_error", f"on_callback_error raised {type(hook_exc).__name__}: "
                                 f"{hook_exc}"[:MAX_EXCEPTION_CHARS])
        response = args[1] if where.startswith("service ") and len(args) >= 2 else None
        if response is not None:
            if hasattr(response, "success"):
                response.success = False
            if hasattr(response, "message"):
                response.message = f"internal error, request dropped: {text}"
        return response

    @property
    def throttled(self) -> ThrottledLog:
        """Per-key throttled logging for this node (see :class:`ThrottledLog`)."""
        if self._throttled is None:
            self._throttled = ThrottledLog(self.get_logger())
        return self._throttled

    def throttled_warning(self, key: Any, text: str, period_s: float = 2.0) -> bool:
        """Log a warning at most once per ``period_s`` for ``key`` (e.g. ``(topic, reason)``)."""
        return self.throttled.warning(key, text, period_s)

    def throttled_error(self, key: Any, text: str, period_s: float = 2.0) -> bool:
        return self.throttled.error(key, text, period_s)

    def node_diagnostics(self) -> DiagnosticStatus:
        """``<node>: node``: lifecycle state and the callback exceptions caught, per callback."""
        with self._callback_error_lock:
            errors = dict(self.callback_errors)
            last, since = self.last_callback_error, time.monotonic() - self._last_callback_error_t
        total = sum(errors.values())
        values = {"state": STATE_LABELS.get(self.lifecycle_state, str(self.lifecycle_state)),
                  "callback_errors": total, "last_callback_error": last, "last_error": self.last_error}
        values.update({f"callback_errors: {where}": n for where, n in sorted(errors.items())})
        recent = since < CALLBACK_ERROR_WARN_S
        return DiagnosticStatus(
            level=DiagnosticStatus.WARN if recent else DiagnosticStatus.OK, name=f"{self.get_name()}: node",
            hardware_id=self.get_fully_qualified_name(),
            message=(f"{total} callback exception(s) caught, the last {since:.0f} s ago: {last}" if recent else
                     f"{values['state']}; {total} callback exception(s) caught"),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def publish_node_diagnostics(self) -> None:
        array = DiagnosticArray(status=[self.node_diagnostics()])
        array.header.stamp = self.get_clock().now().to_msg()
        self._node_diag_pub.publish(array)

    @classmethod
    def all_params(cls) -> tuple[ParamSpec, ...]:
        """Every parameter this node declares (``vla up`` validates parameter files against them)."""
        return MANAGED_NODE_PARAMS + tuple(cls.PARAMS)

    # ---- hooks for subclasses ---------------------------------------------------------------------
    def configure(self, params: dict[str, Any]) -> None:
        """Validate ``params``, build core objects, create publishers/subscriptions. Raise to fail."""

    def activate(self) -> None:
        """Reset stale state and start output."""

    def deactivate(self) -> None:
        """Stop output; INACTIVE never commands."""

    def cleanup(self) -> None:
        """Release everything ``configure`` created. Must tolerate a partial configure."""

    # ---- lifecycle plumbing ---------------------------------------------------------------------
    @property
    def lifecycle_state(self) -> int:
        return self._state_machine.current_state[0]

    @property
    def is_active(self) -> bool:
        return self.lifecycle_state == State.PRIMARY_STATE_ACTIVE

    def publish_heartbeat(self) -> None:
        now = self._steady.now()
        msg = Heartbeat(node=self.get_fully_qualified_name(), state=self.lifecycle_state,
                        last_error=self.last_error)
        msg.stamp = now.to_msg()
        self._heartbeat_pub.publish(msg)

    def fail(self, action: str, exc: BaseException) -> None:
        """Record and log why ``action`` failed (a ConfigError's text already says what to change)."""
        if isinstance(exc, (ConfigError, ValueError, FileNotFoundError)):
            self.last_error = f"{action} failed: {exc}"
        else:
            self.last_error = f"{action} failed: {type(exc).__name__}: {exc}"
            self.get_logger().debug(traceback.format_exc())
        self.get_logger().error(self.last_error)
        self.publish_heartbeat()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.last_error = ""
        try:
            if self._startup_problems:
                raise ConfigError(self._startup_problems)
            self.params = read_specs(self, self.all_params())
            self.configure(self.params)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a FAILURE with its reason
            self.fail("configure", exc)
            self._safe_cleanup()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured")
        self.publish_heartbeat()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            super().on_activate(state)
            self.activate()
        except Exception as exc:  # noqa: BLE001
            self.fail("activate", exc)
            self._safe_deactivate()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("activated")
        self.publish_heartbeat()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._safe_deactivate()
        self.get_logger().info("deactivated")
        self.publish_heartbeat()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._safe_cleanup()
        self.get_logger().info("cleaned up")
        self.publish_heartbeat()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.state_id == State.PRIMARY_STATE_ACTIVE:
            self._safe_deactivate()
        if state.state_id in (State.PRIMARY_STATE_ACTIVE, State.PRIMARY_STATE_INACTIVE):
            self._safe_cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._safe_deactivate()
        self._safe_cleanup()
        return TransitionCallbackReturn.SUCCESS

    def _safe_deactivate(self) -> None:
        try:
            self.deactivate()
        except Exception as exc:  # noqa: BLE001 - deactivation must always reach INACTIVE
            self.fail("deactivate", exc)
        LifecycleNode.on_deactivate(self, None)

    def _safe_cleanup(self) -> None:
        try:
            self.cleanup()
        except Exception as exc:  # noqa: BLE001
            self.fail("cleanup", exc)

    def finalize(self) -> None:
        """Stop output and release resources when the process ends without a shutdown transition."""
        if self.is_active:
            self._safe_deactivate()
            # What deactivate sent last (the shield's stop) must reach its subscribers before cleanup destroys
            # the publishers: a destroyed writer takes unacknowledged samples with it.
            _flush_publishers(self, FLUSH_ON_EXIT_S)
        if self.lifecycle_state in (State.PRIMARY_STATE_ACTIVE, State.PRIMARY_STATE_INACTIVE):
            self._safe_cleanup()


def _callable_name(callback: Any) -> str:
    return getattr(callback, "__qualname__", None) or getattr(getattr(callback, "func", None), "__qualname__", None) \
        or type(callback).__name__


class _StopRequest:
    """A SIGINT/SIGTERM handler that only notes the signal; the spin loop ends at its next turn.

    Raising from the handler instead (KeyboardInterrupt) lands wherever the main thread is: inside a callback,
    which then stops half done, or inside rclpy's C++ take of a message, where pybind11 turns it into
    ``RuntimeError: Unable to convert call argument`` and the process exits 1 instead of finalizing cleanly."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name


FLUSH_ON_EXIT_S = 0.5  # at most this long for reliable subscribers to acknowledge a node's last messages


def _flush_publishers(node: "rclpy.node.Node", timeout_s: float) -> None:
    """Wait, at most ``timeout_s`` in all, until every reliable subscriber acknowledged what ``node`` published
    last: a process that exits at once can take unsent samples with it, and the stop a shield sends while it
    finalizes must reach the robot."""
    deadline = time.monotonic() + timeout_s
    for pub in list(node.publishers):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
        except Exception:  # noqa: BLE001 - a publisher already destroyed, or a middleware without the call
            continue


def spin_until_signal(node: "rclpy.node.Node", executor: "rclpy.executors.Executor | None" = None) -> str | None:
    """Spin ``node`` until SIGINT or SIGTERM arrives or the ROS context shuts down; returns the signal's name.

    The handlers only note the signal (see :class:`_StopRequest`), so the callback that runs when it arrives
    completes, and they stay installed afterwards: a second signal while the node finalizes is noted, not raised."""
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    executor = executor if executor is not None else SingleThreadedExecutor()
    executor.add_node(node)
    while stop.signal is None and rclpy.ok():
        spin_once(executor, 0.1)
    return stop.signal


def run_node(node_cls: type, args: Sequence[str] | None = None, *, threads: int = 1) -> int:
    """Entry point for one node per process: init, spin until SIGINT/SIGTERM, finalize, exit 0.

    rclpy's own signal handlers would shut the ROS context down first, and a node stopped by Ctrl-C could then
    no longer send its stop command (the shield's zero on deactivate). Here SIGINT and SIGTERM end the spin at
    its next turn (after the callback that runs, if any), the node finalizes while its publishers still work, and
    the context goes down last."""
    configure_process()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = node_cls()
        # Python runs a signal handler only between bytecodes, and the executor waits in C: a steady 10 Hz wake-up
        # bounds how long SIGINT/SIGTERM can wait on a node with nothing else to do (sim-time timers never fire
        # without /clock).
        node.create_timer(0.1, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))
        spin_until_signal(node, SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if isinstance(node, ManagedNode):
                node.finalize()
            else:
                _flush_publishers(node, FLUSH_ON_EXIT_S)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


@contextlib.contextmanager
def node_session(node: "rclpy.node.Node"):
    """``with node_session(node): executor.spin()``: for a process that runs ``node`` until it is interrupted.

    Ctrl-C (KeyboardInterrupt) and an external shutdown end the block quietly; whichever way it ends, a
    :class:`ManagedNode` then finalizes (stops output, releases what it configured), the node is destroyed and
    the default ROS context shut down."""
    try:
        yield node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if isinstance(node, ManagedNode):
            node.finalize()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main_for(node_cls: type, threads: int = 1):
    """A console-script ``main`` for ``node_cls``."""
    def main(args: Sequence[str] | None = None) -> None:
        sys.exit(run_node(node_cls, args, threads=threads))
    return main
