"""Parameters of the teleop node (pure data)."""
from vla_core.params import ParamSpec
from vla_sim.corrector import MODES

# The registered devices (vla_teleop.devices.DEVICES; a test keeps the two alike).
DEVICE_NAMES = ("expert", "keyboard", "joy", "corrector", "arm_keyboard", "arm_joy", "leader_arm")

TELEOP_PARAMS = (
    ParamSpec("device", "expert", "Input device; corrector: the scripted expert takes over only when the policy "
              "stops making progress; arm_keyboard, arm_joy: end-effector jog of an arm; leader_arm: mirror a "
              "leader arm's joint_states", choices=DEVICE_NAMES, read_only=True),
    ParamSpec("contract", "", "Robot contract (params/robots/*.yaml) whose command the node sends: the arm devices "
              "send its joint command (type, mode, limits) on teleop/cmd; empty: a planar Twist on teleop/cmd_vel",
              read_only=True),
    ParamSpec("rate", 10.0, "Command rate (the robot contract's fps)", range=(1.0, 1000.0), unit="Hz",
              read_only=True),
    ParamSpec("input_wait", 0.0, "Expert and corrector devices: at a tick, wait up to this long for the sim/state "
              "of the tick's own instant (stamped no earlier than the tick) before commanding, then command from "
              "what there is (ticks due meanwhile merge into it); 0: command at once from the newest state",
              range=(0.0, 1.0), unit="s (wall clock)"),
    ParamSpec("max_speed", 0.25, "Largest commanded speed per axis", range=(0.0, 10.0), unit="m/s"),
    ParamSpec("expert_noise", 0.0, "Expert and corrector devices: standard deviation of the Gaussian noise added "
              "to each scripted command per axis (DART demonstrations: they show recoveries from small errors); "
              "0 for none", range=(0.0, 1.0), unit="m/s"),
    ParamSpec("keyboard_speed", 0.1, "Speed of a keyboard key press", range=(0.0, 10.0), unit="m/s"),
    ParamSpec("keyboard_hold_time", 0.6, "A key press commands for this long (bridges key repeat)",
              range=(0.05, 5.0), unit="s"),
    ParamSpec("joy_axis_x", 1, "Joy axis for forward (+x) motion", range=(0, 63)),
    ParamSpec("joy_axis_y", 0, "Joy axis for leftward (+y) motion", range=(0, 63)),
    ParamSpec("joy_deadman_button", 4, "Joy button that must be held to command; -1 for none", range=(-1, 63)),
    ParamSpec("input_timeout", 0.5, "Input (sim state, Joy, joint_states, a leader's joint_states) older than this "
              "is ignored", range=(0.01, 10.0),
              unit="s"),
    ParamSpec("corrector_mode", "on_error", "Corrector: on_error takes over when the policy stalls; on_help when "
              "the policy asks for help (policy/help: its uncertainty above the policy node's help_threshold); "
              "on_error_or_help either; always drives every step (demonstrations); off only watches (the policy "
              "alone)", choices=MODES),
    ParamSpec("corrector_patience", 5.0, "Corrector: take over when the target block has come no closer to its "
              "zone by corrector_min_progress for this long (sim time); keep it above the approach to the block "
              "(the scripted expert's took up to 4.9 s on the hard task)",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_takeover", 2.0, "Corrector: drive with the scripted expert for this long, then hand back",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_min_progress", 0.01, "Corrector: the least decrease of the target block's distance to "
              "its zone centre that counts as progress", range=(0.001, 0.5), unit="m"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics (commands sent, inputs rejected and why)",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_max_takeovers", 0, "Corrector: most takeovers per episode; 0 for no limit",
              range=(0, 1000)),
    # ---- arms: end-effector jog (arm_keyboard, arm_joy) and leader arm (leader_arm) ----
    ParamSpec("arm_model", "", "Arm devices' jog: the robot's URDF or MJCF (loaded with MuJoCo), its joints named as "
              "the contract's action names, its world frame base_link", read_only=True),
    ParamSpec("arm_link", "", "Arm devices' jog: the end effector to move, a site or body of arm_model",
              read_only=True),
    ParamSpec("gripper_joint", "", "Arm devices' jog: the contract's action name of the gripper (moved by the "
              "gripper keys/buttons, never by the kinematics); empty for none", read_only=True),
    ParamSpec("jog_linear_speed", 0.05, "Jog: tool speed at full key or stick", range=(0.0, 1.0), unit="m/s"),
    ParamSpec("jog_angular_speed", 0.3, "Jog: tool rotation rate at full key or stick", range=(0.0, 3.0),
              unit="rad/s"),
    ParamSpec("gripper_speed", 0.04, "Jog: gripper rate at full key or button, in the gripper joint's units per "
              "second (m/s for an opening)", range=(0.0, 10.0)),
    ParamSpec("jog_damping", 0.05, "Jog: damping of the damped-least-squares step (larger: steadier near "
              "singularities, slower to follow)", range=(0.001, 1.0)),
    ParamSpec("jog_max_lead", 0.2, "Jog: farthest a joint target runs ahead of the measured joint (rad or m); 0 "
              "for no bound", range=(0.0, 3.2)),
    ParamSpec("arm_joy_axes", [1, 0, 4, -1, -1, 3], "arm_joy: the Joy axis of each of vx, vy, vz, wx, wy, wz "
              "(base_link; -1 none)", range=(-1, 63)),
    ParamSpec("arm_joy_gripper_buttons", [0, 1], "arm_joy: the Joy buttons that close and open the gripper (-1 "
              "none)", range=(-1, 63)),
    ParamSpec("leader_topic", "leader/joint_states", "leader_arm: the leader arm's sensor_msgs/JointState topic",
              read_only=True),
    ParamSpec("leader_joint_map", [""], "leader_arm: 'leader_name=follower_name' pairs for joints named otherwise "
              "('name=' ignores a leader joint); other names map onto themselves", read_only=True),
    ParamSpec("leader_wait", 5.0, "leader_arm: configure waits this long for the leader's first joint_states and "
              "checks its joint names", range=(0.1, 120.0), unit="s", read_only=True),
)
