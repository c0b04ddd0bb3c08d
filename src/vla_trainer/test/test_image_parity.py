"""Train/serve parity of the image path: the trainer's batch code and the policy node's input code turn the same
uint8 frame into bitwise the same float32 tensor (every byte value 0..255 appears in the frame, so a conversion
that rounds differently on any of them fails here)."""
import numpy as np
import torch

from vla_policy.inputs import InputCache
from vla_trainer.train import batch_tensors

FEATURE = "observation.images.top"


def test_trainer_batch_and_policy_feed_are_bitwise_equal():
    frame = (np.arange(96 * 96 * 3) % 256).astype(np.uint8).reshape(96, 96, 3)
    arrays = {"images": {"top": frame[None].copy()}, "state": np.zeros((1, 4), np.float32),
              "language": np.zeros((1, 384), np.float32), "action": np.zeros((1, 8, 2), np.float32),
              "action_pad": np.zeros((1, 8), bool)}
    trained = batch_tensors(arrays, torch.device("cpu"))["images"]["top"][0].numpy()

    cache = InputCache()
    cache.put(FEATURE, frame, stamp=None)
    served = cache.feeds({FEATURE: "image_top"})["image_top"][0]

    assert trained.dtype == served.dtype == np.float32
    assert trained.shape == served.shape == (3, 96, 96)
    differing = int(np.count_nonzero(trained.view(np.uint32) != served.view(np.uint32)))
    assert differing == 0, f"{differing} values differ between the trainer's and the policy node's image tensors"


def test_old_division_would_differ():
    """The check above can fail: dividing by 255 (instead of multiplying by float32(1/255)) differs in the last
    bit on many byte values, which is what the parity test guards against."""
    values = torch.arange(256, dtype=torch.uint8).float()
    divided = values.div(255.0).numpy()
    served = InputCache()
    served.put(FEATURE, np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3), stamp=None)
    multiplied = served.feeds({FEATURE: "x"})["x"][0, 0].ravel()
    assert np.count_nonzero(divided.view(np.uint32) != multiplied.view(np.uint32)) > 0
