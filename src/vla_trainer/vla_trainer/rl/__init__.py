"""Reinforcement learning on the workspace's encoders (no rclpy): SAC with RLPD sampling, and a learned reward.

- :mod:`vla_trainer.rl.networks`: the tanh-squashed Gaussian actor (a Policy: it exports as an artifact) and the
  twin Q critics;
- :mod:`vla_trainer.rl.replay`: transitions, checked replay buffers, RLPD batches, demonstrations from datasets;
- :mod:`vla_trainer.rl.sac`: the SAC update (twin critics, Polyak targets, entropy tuning), all-or-nothing;
- :mod:`vla_trainer.rl.reward`: a success classifier over frames, trained from datasets labelled by episode
  success, with precision/recall on held-out episodes and an ONNX reward artifact.
"""
