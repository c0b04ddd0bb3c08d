"""Parameters of the web_view node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

WEB_VIEW_PARAMS = (
    ParamSpec("bind", "127.0.0.1", "Address of the operator page: 127.0.0.1 (this machine only) or the robot's "
              "LAN address / 0.0.0.0 (refused unless token is set)", read_only=True),
    ParamSpec("port", 8080, "TCP port of the operator page (0: any free port, printed at start-up)",
              range=(0, 65535), read_only=True),
    ParamSpec("token", "", "Token every request of the operator page must carry; empty: a random one, printed at "
              "start-up (binding beyond localhost needs one set here)", read_only=True),
    ParamSpec("cameras", ["/camera/top/image_raw"], "sensor_msgs/Image topics to show (rgb8, bgr8, mono8)",
              read_only=True),
    ParamSpec("camera_rate", 10.0, "Frames shown per camera and second at most (the rest are skipped before any "
              "decoding)", range=(0.1, 60.0), unit="Hz"),
    ParamSpec("camera_width", 320, "Frames wider than this are downscaled (aspect kept) before JPEG encoding",
              range=(16, 4096), unit="px"),
    ParamSpec("jpeg_quality", 80, "JPEG quality of the frames shown", range=(10, 100)),
    ParamSpec("command_type", "twist", "Message type of the proposed and sent commands: twist "
              "(geometry_msgs/Twist) or multiarray (std_msgs/Float64MultiArray, an arm's joint command)",
              choices=("twist", "multiarray"), read_only=True),
    ParamSpec("proposed_topic", "/policy/cmd_vel", "The policy's proposal", read_only=True),
    ParamSpec("sent_topic", "/cmd_vel", "The command the shield sent to the robot", read_only=True),
    ParamSpec("joint_states_topic", "/joint_states", "sensor_msgs/JointState to plot (positions, by joint); empty: "
              "none", read_only=True),
    ParamSpec("joint_states_rate", 10.0, "Joint states plotted per second at most", range=(0.1, 1000.0), unit="Hz"),
    ParamSpec("shield", "/safety_shield", "The safety shield node (its ~/state, ~/estop, ~/reset)", read_only=True),
    ParamSpec("recorder", "/recorder", "The training-recorder node (its ~/save, ~/discard, ~/mark)", read_only=True),
    ParamSpec("policy", "/policy", "The policy node (its ~/load_policy and ~/rollback)", read_only=True),
    ParamSpec("deploy_timeout", 120.0, "How long Deploy waits for the policy node to verify, load and warm up a "
              "policy", range=(1.0, 3600.0), unit="s"),
    ParamSpec("manager", "/lifecycle_manager", "The lifecycle manager (its ~/status)", read_only=True),
    ParamSpec("policy_status_topic", "/policy/status", "The policy node's status", read_only=True),
    ParamSpec("history_s", 30.0, "Seconds of commands kept for the page's plot", range=(1.0, 600.0), unit="s"),
    ParamSpec("service_timeout", 3.0, "How long a button waits for the service it calls", range=(0.1, 60.0),
              unit="s"),
    ParamSpec("datasets", ["data", "runs"], "Folders (relative to the workspace) searched for recorded datasets "
              "(LeRobotDataset v3.0) that the page lists and plays into the Rerun view; empty: none",
              read_only=True),
    ParamSpec("rerun", True, "Serve the Rerun live view (its gRPC data stream and its web viewer)", read_only=True),
    ParamSpec("rerun_grpc_port", 9876, "Port of Rerun's gRPC data stream", range=(1, 65535), read_only=True),
    ParamSpec("rerun_web_port", 9090, "Port of Rerun's web viewer", range=(1, 65535), read_only=True),
    ParamSpec("rerun_memory_limit", "256MiB", "Data Rerun keeps for late viewers (oldest dropped first)",
              read_only=True),
)
WEB_VIEW_PARAMS += (
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
