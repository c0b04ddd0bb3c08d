"""The ROS shell shared by the workspace's nodes. Algorithms live in ROS-free packages (vla_core, ...)."""
