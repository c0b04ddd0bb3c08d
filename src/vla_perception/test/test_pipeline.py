"""Camera messages -> model-ready images: the encoding matrix, bad inputs, and pixel parity with the recorder's
function and the trainer's dataset resize (bitwise, on fixed inputs). The tensor parity of the trainer's batch code
and the policy node's input code is tested in vla_trainer/test/test_image_parity.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from vla_core.contract import CameraSpec
from vla_core.image import ImageError, camera_frame
from vla_core.observation import model_image, to_chw_float
from vla_perception.pipeline import CameraPipeline

TOP = CameraSpec("top", "camera/top/image_raw", "camera/top/camera_info", 96, 96, "rgb8", "cam")
DEPTH = CameraSpec("depth", "camera/depth/image_raw", "camera/depth/camera_info", 48, 64, "16UC1", "cam")


def fixed_rgb(h=480, w=640, seed=3):
    """A fixed image with edges and gradients (so a wrong resize or channel order shows)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 4: h // 2, w // 4: w // 2] = (250, 20, 40)
    return img


def image_msg(array: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    array = np.ascontiguousarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if bigendian:
        array = array.astype(array.dtype.newbyteorder(">"))
    h, w = array.shape[:2]
    row = array.reshape(h, -1).view(np.uint8)
    rows = np.concatenate([row, np.zeros((h, pad), np.uint8)], axis=1) if pad else row
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1],
                 data=rows.tobytes())


RGB = fixed_rgb()
EXPECTED = cv2.resize(RGB, (96, 96), interpolation=cv2.INTER_AREA)
GREY = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("encoding, array, expected", [
    ("rgb8", RGB, EXPECTED),
    ("bgr8", RGB[..., ::-1], EXPECTED),
    ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)]), EXPECTED),
    ("bgra8", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 200, np.uint8)]), EXPECTED),
    ("mono8", GREY, np.repeat(cv2.resize(GREY, (96, 96), interpolation=cv2.INTER_AREA)[..., None], 3, 2)),
    ("mono16", GREY.astype(np.uint16) * 256 + 255,
     np.repeat(cv2.resize(GREY, (96, 96), interpolation=cv2.INTER_AREA)[..., None], 3, 2)),
])
@pytest.mark.parametrize("pad", [0, 8])
def test_encoding_matrix(encoding, array, expected, pad):
    out = CameraPipeline(TOP).from_image(image_msg(array, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (96, 96, 3)
    np.testing.assert_array_equal(out, expected)


def test_big_endian_mono16_reads_like_little_endian():
    value = GREY.astype(np.uint16) * 256
    little = CameraPipeline(TOP).from_image(image_msg(value, "mono16"))
    big = CameraPipeline(TOP).from_image(image_msg(value, "mono16", bigendian=True))
    np.testing.assert_array_equal(little, big)


@pytest.mark.parametrize("encoding, raw, scale", [("16UC1", np.uint16, 0.001), ("32FC1", np.float32, 1.0)])
def test_depth_is_metres_resized_by_nearest(encoding, raw, scale):
    depth_m = np.zeros((96, 128), np.float32)
    depth_m[:, 64:] = 2.5  # a step edge: nearest keeps it sharp, averaging would invent 1.25 m
    depth_m[10, 10] = 0.75
    values = (np.round(depth_m / scale) if raw is np.uint16 else depth_m / scale).astype(raw)
    out = CameraPipeline(DEPTH).from_image(image_msg(values, encoding))
    assert out.dtype == np.float32 and out.shape == (48, 64)
    assert set(np.unique(out).round(4)) <= {0.0, 0.75, 2.5}
    np.testing.assert_allclose(out[:, 40:], 2.5)


def test_depth_nan_becomes_unknown():
    depth = np.full((96, 128), np.nan, np.float32)
    out = CameraPipeline(DEPTH).from_image(image_msg(depth, "32FC1"))
    assert np.all(out == 0.0)


def test_png_compressed_is_bitwise_the_raw_path_and_jpeg_is_close():
    ok, png = cv2.imencode(".png", RGB[..., ::-1])
    out = CameraPipeline(TOP).from_compressed(CompressedImage(format="png", data=png.tobytes()))
    np.testing.assert_array_equal(out, EXPECTED)
    ok, jpg = cv2.imencode(".jpg", RGB[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = CameraPipeline(TOP).from_compressed(CompressedImage(format="jpeg", data=jpg.tobytes()))
    assert np.abs(out.astype(int) - EXPECTED).mean() < 6


def test_compressed_16bit_png_depth():
    depth_mm = np.full((96, 128), 1500, np.uint16)
    ok, png = cv2.imencode(".png", depth_mm)
    out = CameraPipeline(DEPTH).from_compressed(CompressedImage(format="16UC1; png", data=png.tobytes()))
    np.testing.assert_allclose(out, 1.5)


@pytest.mark.parametrize("msg, words", [
    (Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32)), ["yuv422", "rgb8"]),
    (Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(40)), ["40 bytes", "48"]),
    (Image(height=0, width=4, encoding="rgb8", step=12, data=b""), ["empty"]),
    (Image(height=4, width=4, encoding="rgb8", step=6, data=bytes(24)), ["step 6"]),
    (Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(32)), ["depth"]),
])
def test_bad_images_name_the_value(msg, words):
    with pytest.raises(ImageError) as err:
        CameraPipeline(TOP).from_image(msg)
    for word in words:
        assert word in str(err.value)


def test_colour_on_a_depth_camera_is_refused():
    with pytest.raises(ImageError, match="depth camera"):
        CameraPipeline(DEPTH).from_image(image_msg(RGB, "rgb8"))


@pytest.mark.parametrize("data, words", [(b"", "empty"), (b"\xff\xd8\xff garbage", "could not be decoded")])
def test_corrupt_compressed_is_refused(data, words):
    with pytest.raises(ImageError, match=words):
        CameraPipeline(TOP).from_compressed(CompressedImage(format="jpeg", data=data))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_parity_recorder_trainer_perception(encoding):
    """The recorder's function, the trainer's dataset resize and the perception node's conversion agree bitwise."""
    source = RGB if encoding == "rgb8" else np.ascontiguousarray(RGB[..., ::-1])
    msg = image_msg(source, encoding, pad=4)
    perception = CameraPipeline(TOP).from_image(msg)
    recorder = camera_frame(msg.data, msg.height, msg.width, msg.encoding, msg.step, 96, 96)
    assert perception.tobytes() == recorder.tobytes()
    # Trainer: the recorded frame -> tensor; a dataset stored at camera size -> the same model image.
    trainer = to_chw_float(model_image(recorder, 96, 96))
    trainer_full = to_chw_float(model_image(RGB, 96, 96))
    served = to_chw_float(perception)
    assert served.tobytes() == trainer.tobytes() == trainer_full.tobytes()
    assert model_image(RGB, 96, 96).tobytes() == perception.tobytes()
