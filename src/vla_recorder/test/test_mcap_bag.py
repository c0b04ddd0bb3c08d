"""McapBag: serialized ROS 2 messages in, readable ROS 2 messages (schema and all) out."""
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
