"""Contracts shared by the workspace's packages. Imports neither rclpy nor torch."""
