"""Training-recorder: robot-contract topics -> LeRobotDataset v3.0 episodes (node, `vla record`, benchmark)."""
