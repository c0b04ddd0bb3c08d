"""Fault scenarios against a running graph (a :class:`vla_tools.fuzz_graph.Graph`): SIGKILL of one process,
a stray /clock publisher while the only command source goes silent, a flood of messages on every input, and a
second graph on the same ROS domain. Each returns plain figures; the tests and `vla bench reliability` decide.

Times are time.monotonic() in this process: when a command arrived here, when a signal was sent.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import State
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from vla_tools.fuzz_graph import FUZZ_PUB, Graph, interface_class, publisher_qos
from vla_tools.fuzz_messages import edge_cases
from vla_ros import node_qos

STOPPED_SPEED = 1e-3  # m/s (or rad/s): a joint slower than this is standing still


def _moving(values) -> bool:
    return any(abs(x) > 1e-9 for x in values)


@dataclass
class KillResult:
    node: str
    safe_after_s: float | None    # SIGKILL -> last non-zero command (None: still commanding at the end)
    detected_after_s: float | None  # SIGKILL -> the manager leaving 'active' (None: never, e.g. it was killed)
    nonzero_after_detection: int
    robot_stopped: bool           # the robot's joints stood still at the end (or the robot process is gone)
    commands_before: int
    robot: str = ""               # what was seen of the robot at the end, when it did not stop (for the report)

    def as_dict(self) -> dict:
        r = lambda x: None if x is None else round(x, 3)  # noqa: E731
        return {"safe_after_s": r(self.safe_after_s), "detected_after_s": r(self.detected_after_s),
                "nonzero_after_detection": self.nonzero_after_detection, "robot_stopped": self.robot_stopped,
                **({"robot": self.robot} if self.robot else {})}


class JointWatch:
    """The newest joint velocities on /joint_states: newest by the message's stamp, not by arrival (a sample
    can arrive after a newer one)."""

    def __init__(self, graph: Graph):
        self.velocity: list[float] | None = None
        self.stamp = -math.inf
        self.arrived = -math.inf  # time.monotonic() of the newest sample's arrival
        graph.node.create_subscription(JointState, "/joint_states", self._on, node_qos.SENSOR_SUB)

    def _on(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp >= self.stamp:
            self.velocity, self.stamp, self.arrived = list(msg.velocity), stamp, time.monotonic()

    def stopped(self, quiet_s: float = 1.0) -> bool:
        """Every joint slower than STOPPED_SPEED, or no sample for ``quiet_s`` (a simulated robot publishes
        while it steps: one that has stopped publishing has stopped stepping, so nothing moves)."""
        if self.velocity is not None and all(abs(v) < STOPPED_SPEED for v in self.velocity):
            return True
        return time.monotonic() - self.arrived > quiet_s


def kill_node(graph: Graph, name: str, heartbeat_timeout: float, observe_s: float | None = None) -> KillResult:
    """SIGKILL ``name`` (a managed node or the lifecycle manager) while the robot is being commanded, and
    measure how the command path goes safe."""
    joints = JointWatch(graph)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and sum(_moving(v) for _, v in graph.commands.after(0.0)) < 5:
        time.sleep(0.05)
    before = sum(_moving(v) for _, v in graph.commands.after(0.0))
    killed_at = time.monotonic()
    os.kill(graph.pid(name), signal.SIGKILL)
    end = killed_at + (observe_s if observe_s is not None else heartbeat_timeout + 4.0)
    while time.monotonic() < end:
        time.sleep(0.05)
    after = graph.commands.after(killed_at)
    moving = [t for t, v in after if _moving(v)]
    # Still commanding motion in the last second observed: the command path never went safe.
    never_safe = bool(moving) and moving[-1] > end - 1.0
    safe_after = None if never_safe else ((moving[-1] - killed_at) if moving else 0.0)
    detection = next(((t, sent) for t, m, sent in list(graph.status_history)
                      if t > killed_at and m.phase != "active"), None)
    detected = None if detection is None else detection[0]
    # Ordered by when each was sent: a command sent just before the status can arrive just after it.
    nonzero_after = 0 if detection is None else sum(_moving(v) for v in graph.commands.sent_after(detection[1]))
    # A simulated robot that is not ACTIVE is paused: its joints stand still wherever its last joint_states left
    # them (it stops publishing, so that last sample can show the motion the stop interrupted).
    last = graph.status_history[-1][1] if graph.status_history else None
    paused = last is not None and any(n.node == "sim_robot" and n.state in (State.PRIMARY_STATE_INACTIVE,
                                                                            State.PRIMARY_STATE_UNCONFIGURED)
                                      for n in last.nodes)
    stopped = any(n == "sim_robot" for n, _, _ in graph.dead()) or joints.stopped() or paused
    state = next((n.state for n in last.nodes if n.node == "sim_robot"), None) if last is not None else None
    phase = last.phase if last is not None else "-"
    seen = "" if stopped else (f"joint velocities {joints.velocity}, last sample "
                               f"{time.monotonic() - joints.arrived:.2f} s ago, sim_robot state {state} in the "
                               f"manager's last status ({phase})")
    return KillResult(name, safe_after, None if detected is None else detected - killed_at, nonzero_after,
                      stopped, before, seen)


@dataclass
class ClockAttackResult:
    stop_after_s: float | None  # the command source's silence -> last non-zero command (None: never stopped)
    nonzero_after_silence: int
    attack_messages: int

    def as_dict(self) -> dict:
        return {"stop_after_s": None if self.stop_after_s is None else round(self.stop_after_s, 3),
                "nonzero_after_silence": self.nonzero_after_silence, "attack_messages": self.attack_messages}


def shield_only_profile(directory: Path) -> str:
    """Write ``directory``/shield_only.yaml, a profile of the sim robot behind the shield and nothing else (the
    caller is the only command source, e.g. :func:`clock_attack`'s), and return its path. The parameter files
    are the workspace's ($VLA_WS, default: the current directory)."""
    ws = os.environ.get("VLA_WS", os.getcwd())
    path = Path(directory) / "shield_only.yaml"
    path.write_text(f"""description: sim robot behind the shield; the caller is the only command source
use_sim_time: true
manager: {{name: lifecycle_manager, params: {ws}/params/lifecycle_manager.yaml}}
nodes:
  - {{name: sim_robot, package: vla_sim, executable: sim_robot, params: [{ws}/params/sim_robot.yaml]}}
  - {{name: safety_shield, package: vla_safety, executable: safety_shield, params: [{ws}/params/safety_shield.yaml]}}
""")
    return str(path)


def clock_attack(graph: Graph, command_topic: str = "/teleop/cmd_vel", speed: float = -0.2,
                 command_s: float = 2.0, attack_s: float = 1.0, attack_clock_s: float = 1e6,
                 observe_s: float = 5.0) -> ClockAttackResult:
    """Command ``speed`` m/s on ``command_topic`` at 10 Hz (the graph's only command source) while, for the
    last ``attack_s`` of it, a stray publisher sends /clock = ``attack_clock_s`` at 50 Hz; then both go silent.
    A shield whose freshness checks a stray /clock cannot stretch stops within its command timeout."""
    node = graph.node
    cmd_pub = node.create_publisher(Twist, command_topic, node_qos.COMMAND)
    clock_pub = node.create_publisher(Clock, "/clock", FUZZ_PUB)
    deadline = time.monotonic() + 10.0
    while cmd_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop = threading.Event()
    sent = [0]

    def attack():
        msg = Clock()
        msg.clock.sec = int(attack_clock_s)
        start = time.monotonic()
        while not stop.is_set():  # on a 50 Hz schedule: a late wake-up does not lower the rate
            clock_pub.publish(msg)
            sent[0] += 1
            stop.wait(max(0.0, start + sent[0] * 0.02 - time.monotonic()))
    t0 = time.monotonic()
    attacker = None
    twist = Twist()
    twist.linear.x = speed
    while time.monotonic() - t0 < command_s:
        if attacker is None and time.monotonic() - t0 >= command_s - attack_s:
            attacker = threading.Thread(target=attack, daemon=True)
            attacker.start()
        cmd_pub.publish(twist)
        time.sleep(0.1)
    silent_at = time.monotonic()
    stop.set()
    if attacker is not None:
        attacker.join()
    time.sleep(observe_s)
    node.destroy_publisher(cmd_pub)
    node.destroy_publisher(clock_pub)
    moving = [t for t, v in graph.commands.after(silent_at) if _moving(v)]
    never = bool(moving) and moving[-1] > silent_at + observe_s - 1.0
    stop_after = None if never else ((moving[-1] - silent_at) if moving else 0.0)
    return ClockAttackResult(stop_after, len(moving), sent[0])


def forged_heartbeats(graph: Graph, node: str, settle_s: float = 2.0) -> dict:
    """Publish every heartbeat edge case on /``node``/heartbeat from this process (not ``node``'s), then return
    {"phase", "reason" (the manager's), "dead" (processes that exited), "sent"}."""
    from vla_interfaces.msg import Heartbeat
    pub = graph.node.create_publisher(Heartbeat, f"/{node}/heartbeat", FUZZ_PUB)
    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = 0
    for case in edge_cases(Heartbeat, graph.now):
        pub.publish(case.message)
        sent += 1
        time.sleep(0.02)
    forged = Heartbeat(node=f"/{node}", state=3)  # a well-formed beat saying ACTIVE, from the wrong process
    for _ in range(20):
        forged.stamp = graph.node.get_clock().now().to_msg()
        pub.publish(forged)
        sent += 1
        time.sleep(0.05)
    time.sleep(settle_s)
    graph.node.destroy_publisher(pub)
    status = graph.status
    return {"phase": status.phase if status else "none", "reason": status.reason if status else "",
            "dead": [n for n, _, _ in graph.dead()], "sent": sent}


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def flood(graph: Graph, seconds: float, warmup_s: float = 3.0) -> dict[str, dict]:
    """Publish as fast as one thread can, cycling each subscribed topic's edge cases (the huge ones left
    out: this is about rate), for ``warmup_s`` then ``seconds``; return per process {"before_kib",
    "after_kib", "growth_pct", "messages"} measured after the warm-up and after the flood."""
    topics = [t for t in graph.targets() if t.kind == "topic" and t.name not in ("/cmd_vel",)]
    pubs = []
    for t in topics:
        cls = interface_class(t.type_name)
        cases = [c.message for c in edge_cases(cls, graph.now) if "huge" not in c.label and "vga" not in c.label]
        pubs.append((graph.node.create_publisher(cls, t.name, publisher_qos(graph.node, t.name)), cases))
    time.sleep(1.0)  # discovery
    count = [0]

    def run(duration: float) -> None:
        end = time.monotonic() + duration
        i = 0
        while time.monotonic() < end:
            for pub, cases in pubs:
                pub.publish(cases[i % len(cases)])
                count[0] += 1
            i += 1
    names = [*graph.managed, graph.manager]
    run(warmup_s)
    time.sleep(1.0)
    before = {n: rss_kib(graph.pid(n)) for n in names if not _dead(graph, n)}
    count[0] = 0
    run(seconds)
    time.sleep(2.0)
    out = {}
    for n, kib in before.items():
        after = 0 if _dead(graph, n) else rss_kib(graph.pid(n))
        out[n] = {"before_kib": kib, "after_kib": after,
                  "growth_pct": round(100.0 * (after - kib) / kib, 2) if kib else math.nan}
    for pub, _ in pubs:
        graph.node.destroy_publisher(pub)
    out["_messages"] = count[0]
    return out


def _dead(graph: Graph, name: str) -> bool:
    return any(n == name for n, _, _ in graph.dead())


def second_graph(profile: str, timeout: float = 90.0) -> tuple[int | None, str]:
    """Start `vla up PROFILE` as a second graph on this ROS domain; return (exit code or None if it was still
    running after ``timeout`` and had to be stopped, its output)."""
    proc = subprocess.Popen([sys.executable, "-m", "vla_tools.cli", "up", profile, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        # Not SIGINT: its orderly shutdown would send transitions to nodes of the same names, the first graph's.
        # Killed, its nodes get SIGTERM from the kernel (they die with their parent) and stop on their own.
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out
