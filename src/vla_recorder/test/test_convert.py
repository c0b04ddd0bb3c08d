"""Bad input at the recorder's edge: images converted when the contract allows it, refused otherwise;
state and command vectors in the contract's order, NaN (an invalid frame) where a value is missing."""
import numpy as np
import pytest
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from vla_core.contract import CameraSpec, RobotContract
from vla_core.image import ImageError
from vla_recorder.convert import command_vector, image_to_feature, joint_state_vector

CAM = CameraSpec("top", "camera/top/image_raw", "camera/top/camera_info", 96, 96, "rgb8")
CONTRACT = RobotContract.from_dict({
    "robot": "t", "fps": 10, "cameras": {"top": {"topic": "camera/top/image_raw", "height": 96, "width": 96}},
    "state": {"topic": "joint_states", "joints": ["a", "b"], "fields": ["position", "velocity"]},
    "action": {"topic": "cmd_vel", "type": "geometry_msgs/msg/Twist", "fields": ["linear.x", "angular.z"],
               "low": [-1, -1], "high": [1, 1]}})


def image(h, w, encoding, channels, value=(10, 20, 30)):
    arr = np.zeros((h, w, channels), np.uint8)
    arr[...] = value[:channels]
    return Image(height=h, width=w, encoding=encoding, step=w * channels, data=arr.tobytes())


def test_bgr_is_converted_and_reported():
    rgb, note = image_to_feature(image(96, 96, "bgr8", 3), CAM)
    assert rgb.shape == (96, 96, 3) and tuple(rgb[0, 0]) == (30, 20, 10) and note == "bgr8->rgb8"


def test_same_aspect_is_resized():
    rgb, note = image_to_feature(image(192, 192, "rgb8", 3), CAM)
    assert rgb.shape == (96, 96, 3) and "192x192->96x96" in note


@pytest.mark.parametrize("msg, match", [
    (image(50, 100, "rgb8", 3), "aspect ratio"),
    (Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64)), "depth"),
    (Image(height=96, width=96, encoding="yuv422", step=192, data=bytes(96 * 192)), "not supported"),
    (Image(height=96, width=96, encoding="rgb8", step=288, data=bytes(100)), "bytes"),
])
def test_unusable_images_are_refused_with_the_reason(msg, match):
    with pytest.raises(ImageError, match=match):
        image_to_feature(msg, CAM)


def test_state_in_contract_order_and_missing_joint_is_nan():
    msg = JointState(name=["b", "a"], position=[2.0, 1.0], velocity=[20.0, 10.0])
    np.testing.assert_array_equal(joint_state_vector(msg, CONTRACT), [1.0, 10.0, 2.0, 20.0])
    partial = joint_state_vector(JointState(name=["a"], position=[1.0], velocity=[]), CONTRACT)
    assert partial[0] == 1.0 and np.isnan(partial[1:]).all()


def test_command_fields():
    cmd = Twist()
    cmd.linear.x, cmd.angular.z = 0.5, -0.25
    np.testing.assert_array_equal(command_vector(cmd, CONTRACT), [0.5, -0.25])
    arr_contract = RobotContract.from_dict({**{k: v for k, v in {
        "robot": "t", "fps": 10, "cameras": {}, "state": {"topic": "j", "joints": ["a"]}}.items()},
        "action": {"topic": "cmd", "type": "std_msgs/msg/Float64MultiArray", "fields": ["data[0]", "data[1]"],
                   "low": [-1, -1], "high": [1, 1]}})
    assert np.isnan(command_vector(Float64MultiArray(data=[1.0]), arr_contract)).all()  # wrong dimension
