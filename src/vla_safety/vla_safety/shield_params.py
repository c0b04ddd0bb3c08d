"""Parameters of the safety shield (pure data: ``vla up`` validates parameter files against them).

Topology (command type, rate, locks, obstacle sources, joints) is read-only; limits, timeouts and zones may
change at run time (``ros2 param set``), validated together before they take effect.
"""
from vla_core.params import ParamSpec

from vla_safety.shield import COMMAND_TYPES

FRANKA_LOWER = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]
FRANKA_UPPER = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]

SHIELD_PARAMS = (
    ParamSpec("command_type", "twist",
              "What the robot takes: twist (cmd_vel, geometry_msgs/Twist), joint_position or joint_velocity "
              "(cmd, std_msgs/Float64MultiArray as ros2_control's forward controllers)",
              choices=COMMAND_TYPES, read_only=True),
    ParamSpec("rate", 50.0, "Control tick rate; set it to the robot contract's fps (the rate the robot applies "
              "commands); rate limits use dt = 1/rate", range=(1.0, 1000.0), unit="Hz", read_only=True),
    ParamSpec("teleop_timeout", 0.5, "Operator commands older than this no longer count (twist_mux timeout)",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("policy_timeout", 0.5, "Policy commands older than this no longer count; nothing fresh stops",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("locks", "[]", "Lock topics safety/lock/<name> (std_msgs/Bool), a YAML list of "
              "{name, priority, timeout}: engaged (True, or silent for longer than a non-zero timeout) it blocks "
              "sources of priority <= its own; teleop has priority 100, policy 50", read_only=True),
    ParamSpec("max_velocity", [0.5, 0.5, 0.0, 0.0, 0.0, 1.0],
              "Twist: largest |value| per field (linear x y z m/s, angular x y z rad/s); 0 forbids the field",
              range=(0.0, 100.0)),
    ParamSpec("max_accel", [2.5, 2.5, 1.0, 1.0, 1.0, 3.2], "Twist: largest acceleration when speeding up, per "
              "field", range=(1e-6, 1000.0), unit="m/s^2, rad/s^2"),
    ParamSpec("max_decel", [2.5, 2.5, 1.0, 1.0, 1.0, 3.2], "Twist: largest deceleration when slowing down, per "
              "field (stops are never rate-limited)", range=(1e-6, 1000.0), unit="m/s^2, rad/s^2"),
    ParamSpec("max_jerk", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Twist: largest jerk per field; 0 disables",
              range=(0.0, 100000.0), unit="m/s^3, rad/s^3"),
    ParamSpec("deadband", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Twist: smaller |value| per field becomes 0",
              range=(0.0, 10.0)),
    ParamSpec("joint_names", [f"joint{i}" for i in range(1, 8)],
              "Joints of joint commands, in command order (positions are read from joint_states by name)",
              read_only=True),
    ParamSpec("joint_lower", FRANKA_LOWER, "Joint commands: lower position limit per joint",
              range=(-1000.0, 1000.0), unit="rad or m"),
    ParamSpec("joint_upper", FRANKA_UPPER, "Joint commands: upper position limit per joint",
              range=(-1000.0, 1000.0), unit="rad or m"),
    ParamSpec("joint_max_velocity", [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61],
              "Joint commands: largest velocity per joint", range=(0.0, 1000.0), unit="rad/s or m/s"),
    ParamSpec("joint_max_accel", [15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0],
              "Joint commands: largest acceleration per joint", range=(0.0, 10000.0), unit="rad/s^2 or m/s^2"),
    ParamSpec("joint_max_step", [0.05] * 7, "Joint commands: largest change of the command per tick "
              "(position for joint_position, velocity for joint_velocity)", range=(0.0, 1000.0)),
    ParamSpec("workspace_enabled", False, "Keep the end effector inside the workspace box (Twist commands to "
              "Cartesian robots whose workspace_joints give the end-effector position)", read_only=True),
    ParamSpec("workspace_joints", ["gantry_x", "gantry_y"], "joint_states names giving the end effector's "
              "x, y (and z) in base_link", read_only=True),
    ParamSpec("workspace_min", [-0.25, -0.25], "Workspace box lower corner (x, y[, z]) in base_link",
              range=(-1000.0, 1000.0), unit="m"),
    ParamSpec("workspace_max", [0.25, 0.25], "Workspace box upper corner (x, y[, z]) in base_link",
              range=(-1000.0, 1000.0), unit="m"),
    ParamSpec("state_timeout", 0.5, "joint_states older than this are not trusted (joint position reference, "
              "workspace box); without them the shield stops", range=(0.01, 10.0), unit="s"),
    ParamSpec("zones", "[]", "Collision zones in base_link, a YAML list of {name, type: stop|slowdown|limit|"
              "approach, points: [[x, y], ...], min_points, slowdown_ratio, linear_limit, angular_limit, "
              "time_before_collision, time_step} (Nav2 collision monitor semantics)"),
    ParamSpec("scan_topic", "", "sensor_msgs/LaserScan obstacle source; empty: none", read_only=True),
    ParamSpec("scan_pose", [0.0, 0.0, 0.0], "Pose (x m, y m, yaw rad) of the scanner in base_link",
              range=(-100.0, 100.0), read_only=True),
    ParamSpec("pointcloud_topic", "", "sensor_msgs/PointCloud2 obstacle source; empty: none", read_only=True),
    ParamSpec("pointcloud_pose", [0.0, 0.0, 0.0], "Pose (x m, y m, yaw rad) of the depth sensor in base_link",
              range=(-100.0, 100.0), read_only=True),
    ParamSpec("min_height", 0.05, "Point-cloud points below this z (sensor frame) are floor", range=(-100.0, 100.0),
              unit="m"),
    ParamSpec("max_height", 2.0, "Point-cloud points above this z (sensor frame) are ignored",
              range=(-100.0, 100.0), unit="m"),
    ParamSpec("sensor_timeout", 0.5, "Obstacle data older than this (header stamp vs node clock) stops the "
              "robot, as the collision monitor's source_timeout", range=(0.01, 10.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
