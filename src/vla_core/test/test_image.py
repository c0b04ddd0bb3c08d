import numpy as np
import pytest

from vla_core.image import ImageError, camera_frame, image_array, resize_rgb, to_rgb8

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, encoding: str, pad: int = 0) -> tuple[bytes, int]:
    if encoding == "rgb8":
        arr = rgb
    elif encoding == "bgr8":
        arr = rgb[..., ::-1]
    elif encoding == "rgba8":
        arr = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "bgra8":
        arr = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    else:
        raise AssertionError(encoding)
    arr = np.ascontiguousarray(arr)
    h, w, c = arr.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = arr.reshape(h, -1)
    return rows.tobytes(), w * c + pad


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_decode_to_the_same_rgb(encoding, pad):
    data, step = encode(RGB, encoding, pad)
    out = to_rgb8(image_array(data, 48, 64, encoding, step), encoding)
    np.testing.assert_array_equal(out, RGB)


def test_mono_encodings_replicate_grey():
    grey = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    out = to_rgb8(image_array(grey.tobytes(), 4, 6, "mono8", 6), "mono8")
    assert out.shape == (4, 6, 3) and np.all(out == grey[..., None])
    wide = (grey.astype(np.uint16) << 8) | 0x7F
    out16 = to_rgb8(image_array(wide.astype("<u2").tobytes(), 4, 6, "mono16", 12), "mono16")
    assert np.all(out16 == grey[..., None])
    big = image_array(wide.astype(">u2").tobytes(), 4, 6, "mono16", 12, is_bigendian=True)
    np.testing.assert_array_equal(big[..., 0], wide)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(encoding="yuv422"), "not supported"),
    (dict(step=10), "smaller than a rgb8 row"),
    (dict(height=47), "needs"),
])
def test_bad_buffers_are_refused_with_the_mismatch(kwargs, fragment):
    data, step = encode(RGB, "rgb8")
    args = dict(data=data, height=48, width=64, encoding="rgb8", step=step) | kwargs
    with pytest.raises(ImageError, match=fragment):
        image_array(**args)


def test_depth_is_not_a_colour_image():
    with pytest.raises(ImageError, match="depth"):
        to_rgb8(np.zeros((2, 2, 1), np.uint16), "16UC1")


def test_resize_is_deterministic_and_anti_aliased():
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: naive subsampling would give all-black or all-white
    small = resize_rgb(stripes, 96, 96)
    assert small.shape == (96, 96, 3) and abs(int(small.mean()) - 127) <= 2
    np.testing.assert_array_equal(small, resize_rgb(stripes, 96, 96))
    same = resize_rgb(RGB, 48, 64)
    np.testing.assert_array_equal(same, RGB)
    assert same is not RGB


def test_camera_frame_is_the_composition():
    data, step = encode(RGB, "bgr8", pad=3)
    out = camera_frame(data, 48, 64, "bgr8", step, 24, 32)
    np.testing.assert_array_equal(out, resize_rgb(RGB, 24, 32))
