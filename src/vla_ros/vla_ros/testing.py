"""Test helpers for nodes run in the test's own process (ROS shell code; used by the packages' tests)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import rclpy
from rclpy.executors import SingleThreadedExecutor

from vla_ros.spinning import SpinThread


@contextmanager
def spinning_probe(namespace: str, name: str = "probe") -> Iterator[tuple[rclpy.Context, "rclpy.node.Node",
                                                                          SingleThreadedExecutor]]:
    """A private ROS context with one node ``name`` under ``namespace``, spun by a single-threaded executor on a
    thread (rclpy's multi-threaded executor polls futures and falls behind a 20 Hz test). Nodes under test are
    created in the same context and added to the executor; everything is shut down on exit."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node(name, namespace=namespace, context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    spinner = SpinThread(executor, "probe").start()
    try:
        yield ctx, probe, executor
    finally:
        if spinner.stop():
            probe.destroy_node()
        rclpy.shutdown(context=ctx)
