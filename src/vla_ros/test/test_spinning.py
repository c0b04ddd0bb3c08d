"""SpinThread with real rclpy: an entity destroyed on another thread while the executor builds its wait set (as
`vla record` destroys the subscriptions it made to wait for the graph) never ends the spinning.

The race is a window of a few bytecodes in rclpy's ``_wait_for_ready_callbacks``: the executor has listed a
subscription's QoS event handler, another thread requests its destruction, and ``add_to_wait_set`` raises
``InvalidHandle``. The test holds that state open: a real event handler whose destruction was requested while
the node still lists it (``destroy_subscription`` would take it out of the list, closing the window)."""
import time

from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Empty

from vla_ros.testing import spinning_probe


def test_an_entity_destroyed_while_the_wait_set_is_built_does_not_stop_the_spinning():
    with spinning_probe("/spin_test") as (_ctx, node, _executor):  # spun by a SpinThread
        ticks = []
        node.create_timer(0.01, lambda: ticks.append(time.monotonic()))
        sub = node.create_subscription(Empty, "/spin_test", lambda _m: None, qos_profile_sensor_data)
        handler = sub.event_handlers[0]
        assert handler in node.waitables
        handler.destroy()  # requested on this thread; the executor still lists it
        time.sleep(0.5)  # every turn meanwhile raises InvalidHandle in rclpy
        node.destroy_subscription(sub)  # takes the handler out of the node's list, as it does a moment later
        before = len(ticks)
        time.sleep(0.5)
        assert len(ticks) > before, "the spinning thread ended on InvalidHandle: the timer stopped firing"


def test_an_action_client_destroyed_while_the_wait_set_is_built_does_not_stop_the_spinning():
    """The same window for an action client (`vla record` destroys its own while the bring-up's executor spins):
    rcl raises RCLError "Failed to add 'rcl_action_client_t' to wait set: action client pointer is invalid"."""
    from rclpy.action import ActionClient

    from vla_interfaces.action import RecordEpisode
    with spinning_probe("/spin_test_action") as (_ctx, node, _executor):
        ticks = []
        node.create_timer(0.01, lambda: ticks.append(time.monotonic()))
        client = ActionClient(node, RecordEpisode, "/spin_test_action/record_episode")
        client._client_handle.destroy_when_not_in_use()  # the handle goes; the node still lists the client
        time.sleep(0.5)  # every turn meanwhile raises RCLError in rclpy
        node.remove_waitable(client)  # as ActionClient.destroy does a moment later
        before = len(ticks)
        time.sleep(0.5)
        assert len(ticks) > before, "the spinning thread ended on RCLError: the timer stopped firing"
