"""McapBag: serialized ROS 2 messages in, readable ROS 2 messages (schema and all) out."""
import pytest
from geometry_msgs.msg import Twist
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from vla_recorder.mcap_bag import McapBag, message_definition


def test_bag_round_trip(tmp_path):
    bag = McapBag(tmp_path / "b.mcap")
    bag.add_topic("/cmd_vel", "geometry_msgs/msg/Twist")
    bag.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
    for i in range(5):
        cmd = Twist()
        cmd.linear.x = 0.1 * i
        bag.write("/cmd_vel", serialize_message(cmd), 1_000 + i)
    img = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(range(12)))
    img.header.stamp.sec, img.header.frame_id = 7, "cam"
    bag.write("/camera/image_raw", serialize_message(img), 2_000)
    bag.close()
    with open(tmp_path / "b.mcap", "rb") as f:
        msgs = [(channel.topic, msg) for _, channel, _, msg in
                make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert [round(m.linear.x, 3) for topic, m in msgs if topic == "/cmd_vel"] == [0.0, 0.1, 0.2, 0.3, 0.4]
    [image] = [m for topic, m in msgs if topic == "/camera/image_raw"]
    assert bytes(image.data) == bytes(range(12)) and image.header.frame_id == "cam" and image.header.stamp.sec == 7


def test_definition_includes_nested_types():
    text = message_definition("sensor_msgs/msg/Image")
    assert "MSG: std_msgs/Header" in text and "MSG: builtin_interfaces/Time" in text


def test_the_preroll_keeps_the_first_frames_messages_by_their_stamps_and_what_was_in_force():
    """An episode's first image can reach the recorder before its clock reaches the image's stamp (a loaded
    machine, a lagging /clock): the bag keeps it by its header stamp, and the command in force at the start."""
    from std_msgs.msg import Float64MultiArray

    from vla_recorder.mcap_bag import Preroll, cdr_header_stamp, preroll_to_keep

    def image(stamp: float) -> bytes:
        msg = Image(height=1, width=1, encoding="rgb8", step=3, data=[1, 2, 3])
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        return serialize_message(msg)

    assert cdr_header_stamp(image(13.1)) == pytest.approx(13.1)
    assert cdr_header_stamp(b"\x00\x01") is None
    command = serialize_message(Float64MultiArray(data=[0.5]))
    ns = lambda s: int(s * 1e9)  # noqa: E731
    preroll = [Preroll("/cmd", command, ns(12.0), None),          # older command: superseded
               Preroll("/camera", image(11.9), ns(11.85), 11.9),   # an older image: superseded
               Preroll("/camera", image(12.0), ns(11.95), 12.0),   # the image before the episode's first
               Preroll("/cmd", command, ns(12.5), None),           # the command in force at the start
               Preroll("/camera", image(13.0), ns(12.6), 13.0)]    # the first frame, received "early"
    kept = preroll_to_keep(preroll, since=12.85)
    assert kept == [preroll[2], preroll[3], preroll[4]]
