"""Parameters of the safety shield (pure data: ``vla up`` validates parameter files against them).

Topology (command type, rate, contract, supervisor, locks, obstacle sources and zones, joints) is read-only.
Limits and timeouts may change at run time (``ros2 param set``), validated together before they take
effect, and only within bounds fixed at configure: the robot contract's hard limits for speed, acceleration
and joint positions (-1 in a limit parameter means the hard limit), and the configured values for timeouts,
the workspace box and jerk.
"""
from vla_core.params import ParamSpec

from vla_safety.shield import COMMAND_TYPES

SHIELD_PARAMS = (
    ParamSpec("command_type", "twist",
              "What the robot takes: twist (cmd_vel, geometry_msgs/Twist), joint_position or joint_velocity "
              "(cmd, std_msgs/Float64MultiArray as ros2_control's forward controllers)",
              choices=COMMAND_TYPES, read_only=True),
    ParamSpec("contract", "params/robots/tabletop_sim.yaml", "Robot contract (YAML) whose action declares the "
              "robot's hard limits (low/high, max_velocity, max_acceleration); read at configure", read_only=True),
    ParamSpec("rate", 50.0, "Control tick rate; set it to the robot contract's fps (the rate the robot applies "
              "commands); rate limits use dt = 1/rate", range=(1.0, 1000.0), unit="Hz", read_only=True),
    ParamSpec("teleop_timeout", 0.5, "Operator commands older than this no longer count (twist_mux timeout)",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("policy_timeout", 0.5, "Policy commands older than this no longer count; nothing fresh stops",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("locks", "[]", "Lock topics safety/lock/<name> (std_msgs/Bool), a YAML list of "
              "{name, priority, timeout}: engaged (True, or silent for longer than a non-zero timeout) it blocks "
              "sources of priority <= its own; teleop has priority 100, policy 50", read_only=True),
    ParamSpec("supervisor", "", "Name of the lifecycle manager that supervises the command path (its ~/status, "
              "vla_interfaces/ManagerStatus, is watched): while it is silent for supervisor_timeout or not "
              "active, the robot stops. Empty: not supervised (a shield run on its own)", read_only=True),
    ParamSpec("supervisor_timeout", 1.0, "Longest silence of the supervisor's status (steady clock) before the "
              "robot stops", range=(0.05, 60.0), unit="s", read_only=True),
    ParamSpec("max_clock_jump", 1.0, "The ROS clock (/clock under use_sim_time) may run ahead of the steady "
              "clock by at most this much between two steps; a larger lead, or any step back, is a clock jump: "
              "the robot stops and held commands are forgotten", range=(0.001, 3600.0), unit="s",
              read_only=True),
    ParamSpec("max_velocity", [-1.0], "Twist: largest |value| per field (linear x y z m/s, angular x y z rad/s), "
              "or one value for all; -1: the contract's hard limit; 0 forbids the field", range=(-1.0, 1000.0)),
    ParamSpec("max_accel", [-1.0], "Twist: largest acceleration when speeding up, per field or one for all; "
              "-1: the contract's hard limit", range=(-1.0, 10000.0), unit="m/s^2, rad/s^2"),
    ParamSpec("max_decel", [-1.0], "Twist: largest deceleration when slowing down, per field or one for all; "
              "-1: the contract's acceleration limit (stops are never rate-limited)", range=(-1.0, 10000.0),
              unit="m/s^2, rad/s^2"),
    ParamSpec("max_jerk", [0.0], "Twist: largest jerk per field or one for all; 0 disables",
              range=(0.0, 100000.0), unit="m/s^3, rad/s^3"),
    ParamSpec("deadband", [0.0], "Twist: smaller |value| per field (or one for all) becomes 0", range=(0.0, 10.0)),
    ParamSpec("joint_names", [""], "Joints of joint commands, in command order (positions are read from "
              "joint_states by name); [''] (the default): the contract's action names, the only order accepted",
              read_only=True),
    ParamSpec("hold_command_joints", [""], "joint_position: joints that keep their last commanded target when the "
              "shield stops (a gripper squeezing an object); every other joint holds the position measured when "
              "the stop began. ['']: none", read_only=True),
    ParamSpec("joint_position_margin", [0.0], "Joint position commands stay this far inside the contract's "
              "position limits, per joint or one for all", range=(0.0, 1000.0), unit="rad or m"),
    ParamSpec("joint_max_velocity", [-1.0], "Joint commands: largest velocity per joint or one for all; -1: the "
              "contract's hard limit", range=(-1.0, 1000.0), unit="rad/s or m/s"),
    ParamSpec("joint_max_accel", [-1.0], "Joint commands: largest acceleration per joint or one for all; -1: the "
              "contract's hard limit", range=(-1.0, 100000.0), unit="rad/s^2 or m/s^2"),
    ParamSpec("joint_max_step", [-1.0], "Joint commands: largest change of the command per tick (position for "
              "joint_position, velocity for joint_velocity), per joint or one for all; -1: only velocity and "
              "acceleration bound it", range=(-1.0, 1000.0)),
    ParamSpec("workspace_enabled", False, "Keep the end effector inside the workspace box: Twist commands to "
              "Cartesian robots whose workspace_joints give the end-effector position, or joint_position commands "
              "through the forward kinematics of workspace_model (a step that would leave the box is shortened)",
              read_only=True),
    ParamSpec("workspace_model", "", "joint_position workspace box: the robot's URDF or MJCF (loaded with MuJoCo); "
              "its joints named as the contract's action names, its world frame base_link", read_only=True),
    ParamSpec("workspace_link", "", "joint_position workspace box: the end effector, a site or body of "
              "workspace_model", read_only=True),
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
              "time_before_collision, time_step} (Nav2 collision monitor semantics)", read_only=True),
    ParamSpec("scan_topic", "", "sensor_msgs/LaserScan obstacle source; empty: none", read_only=True),
    ParamSpec("scan_pose", [0.0, 0.0, 0.0], "Pose (x m, y m, yaw rad) of the scanner in base_link",
              range=(-100.0, 100.0), read_only=True),
    ParamSpec("pointcloud_topic", "", "sensor_msgs/PointCloud2 obstacle source; empty: none", read_only=True),
    ParamSpec("pointcloud_pose", [0.0, 0.0, 0.0], "Pose (x m, y m, yaw rad) of the depth sensor in base_link",
              range=(-100.0, 100.0), read_only=True),
    ParamSpec("min_height", 0.05, "Point-cloud points below this z (sensor frame) are floor", range=(-100.0, 100.0),
              unit="m", read_only=True),
    ParamSpec("max_height", 2.0, "Point-cloud points above this z (sensor frame) are ignored",
              range=(-100.0, 100.0), unit="m", read_only=True),
    ParamSpec("sensor_timeout", 0.5, "Obstacle data older than this (header stamp vs node clock, and receipt on "
              "the steady clock) stops the robot, as the collision monitor's source_timeout", range=(0.01, 10.0),
              unit="s"),
    ParamSpec("help_scale", 0.5, "While the policy asks for help (policy/help, vla_interfaces/HelpRequest) its "
              "commands are scaled by this (velocities; joint positions step this fraction toward the target), under "
              "the usual rate limits (rule help.slow); 0 holds (rule help.hold, a stop). Operator commands are never "
              "scaled. At run time it may only decrease", range=(0.0, 1.0)),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
