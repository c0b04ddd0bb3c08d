"""The managed-node base every long-running node of the workspace derives from.

The lifecycle contract (ARCHITECTURE.md): ``__init__`` declares parameters only; ``configure`` validates
them, builds the core objects and creates publishers/subscriptions, and on any failure cleans up and
returns FAILURE with a message that says what to fix; INACTIVE never commands; ``activate`` resets stale
state; ``deactivate`` stops output; ``cleanup`` releases everything.

Subclasses implement the plain methods ``configure(params)``, ``activate()``, ``deactivate()`` and
``cleanup()``; this class turns their exceptions into lifecycle results, keeps the reason as
``last_error``, and publishes a :class:`vla_interfaces.msg.Heartbeat` on ``~/heartbeat`` from a
steady-clock timer (so that a paused /clock never looks like a dead node) that the lifecycle manager watches.
"""
from __future__ import annotations

import sys
import traceback
from typing import Any, Sequence

import rclpy
from lifecycle_msgs.msg import State
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from vla_core.errors import ConfigError
from vla_core.params import MANAGED_NODE_PARAMS, ParamSpec
from vla_interfaces.msg import Heartbeat
from vla_ros import node_qos
from vla_ros.node_params import declare_specs, read_specs



class ManagedNode(LifecycleNode):
    """A lifecycle node with spec-declared parameters, a heartbeat and error reporting."""

    PARAMS: tuple[ParamSpec, ...] = ()

    def __init__(self, node_name: str, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self.params: dict[str, Any] = {}
        self.last_error = ""
        self._startup_problems = declare_specs(self, self.all_params())
        period = self.get_parameter("heartbeat_period").value
        self._heartbeat_pub = self.create_publisher(Heartbeat, "~/heartbeat", node_qos.HEARTBEAT)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._heartbeat_timer = self.create_timer(period, self.publish_heartbeat, clock=self._steady)
        self._diag_timer = None

    def start_diagnostics(self) -> None:
        """Call ``self._publish_diagnostics`` every ``diagnostics_period`` s of steady time (the wall clock: a
        paused simulation must not silence /diagnostics)."""
        self.stop_diagnostics()
        self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._publish_diagnostics,
                                             clock=self._steady)

    def stop_diagnostics(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

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
        if self.lifecycle_state in (State.PRIMARY_STATE_ACTIVE, State.PRIMARY_STATE_INACTIVE):
            self._safe_cleanup()


def run_node(node_cls: type, args: Sequence[str] | None = None, *, threads: int = 1) -> int:
    """Entry point for one node per process: init, spin until SIGINT/SIGTERM, finalize, exit 0."""
    rclpy.init(args=args)
    node = None
    try:
        node = node_cls()
        executor = SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if isinstance(node, ManagedNode):
                node.finalize()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def main_for(node_cls: type, threads: int = 1):
    """A console-script ``main`` for ``node_cls``."""
    def main(args: Sequence[str] | None = None) -> None:
        sys.exit(run_node(node_cls, args, threads=threads))
    return main
