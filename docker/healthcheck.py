#!/usr/bin/env python3
"""Container health check: is the bring-up ACTIVE?

Calls the lifecycle manager's ``/lifecycle_manager/is_active`` (std_srvs/Trigger, true when every managed node
is ACTIVE) and exits 0 when it answers true, 1 when it answers false, is not available or does not answer
within ``--timeout`` seconds. The first line of output says which (``docker inspect`` shows it).

    python docker/healthcheck.py [--service /lifecycle_manager/is_active] [--timeout 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_SERVICE = "/lifecycle_manager/is_active"


def check(service: str, timeout: float) -> tuple[bool, str]:
    """(healthy, reason) from one call of ``service`` (std_srvs/Trigger), waiting at most ``timeout`` s."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger

    deadline = time.monotonic() + timeout
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node(f"vla_healthcheck_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = node.create_client(Trigger, service)
        # Discovery of a fresh participant takes a moment: wait for the service, never sleep-and-hope.
        if not client.wait_for_service(timeout_sec=max(deadline - time.monotonic(), 0.0)):
            return False, f"{service} is not available (is `vla up` running, in this ROS_DOMAIN_ID?)"
        future = client.call_async(Trigger.Request())
        executor.spin_until_future_complete(future, timeout_sec=max(deadline - time.monotonic(), 0.0))
        if not future.done() or future.result() is None:
            return False, f"{service} did not answer within {timeout:g} s"
        response = future.result()
        return bool(response.success), response.message or ("active" if response.success else "not active")
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.shutdown(context=context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 when the bring-up is active, 1 otherwise.")
    parser.add_argument("--service", default=os.environ.get("VLA_HEALTH_SERVICE", DEFAULT_SERVICE),
                        help=f"std_srvs/Trigger service to call (default {DEFAULT_SERVICE}, or $VLA_HEALTH_SERVICE)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    args = parser.parse_args(argv)
    healthy, reason = check(args.service, args.timeout)
    print(f"{'healthy' if healthy else 'unhealthy'}: {reason}", flush=True)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
