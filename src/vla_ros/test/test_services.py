"""call_and_wait with real rclpy (in process): an answer, a missing service, a service that does not answer."""
import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

from vla_ros.spinning import SpinThread
from vla_ros.services import ServiceCallFailed, call_and_wait


@pytest.fixture
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("services_test", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinner = SpinThread(executor).start()  # the answer arrives through the executor
    yield node
    if spinner.stop():
        node.destroy_node()
    rclpy.shutdown(context=ctx)


def test_the_answer_comes_back(node):
    node.create_service(Trigger, "ok", lambda req, resp: Trigger.Response(success=True, message="done"))
    response = call_and_wait(node.create_client(Trigger, "ok"), Trigger.Request(), 5.0)
    assert response.success and response.message == "done"


def test_a_missing_service_is_named_with_the_hint(node):
    with pytest.raises(ServiceCallFailed, match=r"^/nowhere is not available \(is it running\?\)$"):
        call_and_wait(node.create_client(Trigger, "/nowhere"), Trigger.Request(), 0.2, unavailable_hint="is it running?")


def test_no_answer_in_time_says_so(node):
    release = threading.Event()
    node.create_service(Trigger, "slow", lambda req, resp: (release.wait(2.0), resp)[1])
    try:
        with pytest.raises(ServiceCallFailed, match="^slow_name did not answer within 0.3 s$"):
            call_and_wait(node.create_client(Trigger, "slow"), Trigger.Request(), 0.3, name="slow_name")
    finally:
        release.set()  # the late answer goes out before the node is destroyed
