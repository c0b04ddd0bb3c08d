"""Frozen EfficientNet-Lite0 features: pinned weights, deterministic, from the model-ready image."""
import shutil

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")

from vla_core.errors import ConfigError  # noqa: E402
from vla_perception import features  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return features.ImageFeatures("efficientnet-lite0")


def test_features_are_finite_deterministic_and_tell_images_apart(encoder):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    b = np.zeros((96, 96, 3), np.uint8)
    b[:, 48:] = (200, 30, 30)
    fa, fb = encoder(a), encoder(b)
    assert fa.shape == (1280,) and fa.dtype == np.float32 and np.all(np.isfinite(fa))
    assert encoder(a).tobytes() == fa.tobytes()
    assert np.abs(fa - fb).max() > 0.1
    assert encoder.encoder_id == "efficientnet-lite0@imagenet"


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    bad = tmp_path / "efficientnet-lite0.pth"
    shutil.copy(features.weights_path("efficientnet-lite0"), bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(features, "weights_path", lambda name: bad)
    with pytest.raises(ConfigError, match="sha256"):
        features.ImageFeatures("efficientnet-lite0")


def test_unknown_encoder_is_refused():
    with pytest.raises(ConfigError, match="efficientnet-lite0"):
        features.weights_path("resnet50")
