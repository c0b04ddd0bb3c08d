"""Launch a bring-up profile with `ros2 launch` (for full ROS 2 installs).

    ros2 launch vla_bringup vla.launch.py profile:=sim
    ros2 launch launch/vla.launch.py profile:=sim          # from the workspace root

The graph comes from the same profile that `vla up` reads (vla_bringup.profile), so what the workspace's
tests bring up is what this file launches: the same executables, parameter files, remappings and order,
with the lifecycle manager configuring and activating the nodes.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from vla_bringup.launch_entries import launch_entries


def _nodes(context):
    profile = LaunchConfiguration("profile").perform(context)
    params_dir = LaunchConfiguration("params_dir").perform(context) or None
    actions = []
    for entry in launch_entries(profile, params_dir):
        cls = LifecycleNode if entry.pop("managed") else Node
        actions.append(cls(output="screen", emulate_tty=True, **entry))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("profile", default_value="sim", description="profile in params/profiles/"),
        DeclareLaunchArgument("params_dir", default_value="", description="parameters directory (default: installed)"),
        OpaqueFunction(function=_nodes),
    ])
