"""QoS profiles, chosen on purpose and named by what they carry."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

# Camera images and joint states from the robot: reliable publishers match both reliable subscribers
# (the recorder, which must not lose frames) and best-effort ones (viewers); a short queue bounds latency.
SENSOR_PUB = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
# Consumers that only want the newest sample (control loops, viewers).
SENSOR_SUB = qos_profile_sensor_data
# State that a late joiner must see (the current instruction, manager status): latched.
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Discrete events that must all arrive, including to a subscriber that joins a little late.
EVENTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Commands toward the actuators: reliable, newest first; stale commands are refused by age, not queued.
COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
# Liveness signals: losing one is harmless, the next replaces it.
HEARTBEAT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
# /clock from the simulator.
CLOCK = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                   durability=DurabilityPolicy.VOLATILE)
