"""`vla record`: a recording session like lerobot-record, through the recorder node's RecordEpisode action.

N episodes of at most --episode-time seconds, --reset-time between them; keys while recording (in a
terminal): right arrow or n = end the episode early and save it, left arrow or r = discard and re-record,
s / f = mark success / failure, Esc or q = save the current episode and stop. A progress line while
recording and a cadence report per episode (frames, achieved fps, late and dropped frames).
With --up PROFILE the session brings the profile up itself (e.g. `record`: sim + expert + recorder).
"""
from __future__ import annotations

import json
import os
import select
import sys
import threading
import time

KEYS = {"\x1b[C": "save", "n": "save", "\x1b[D": "rerecord", "r": "rerecord", "\x1b": "stop", "q": "stop",
        "s": "success", "f": "failure"}


def register(subparsers) -> None:
    p = subparsers.add_parser("record", help="record demonstrations into a LeRobot v3.0 dataset",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--up", metavar="PROFILE", help="bring this profile up for the session (e.g. record)")
    p.add_argument("--set", action="append", metavar="NODE.PARAM=VALUE", help="parameter override for --up")
    p.add_argument("--root", help="dataset directory (with --up: sets recorder.root)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to save (default 10)")
    p.add_argument("--episode-time", type=float, default=60.0, help="longest episode, seconds (default 60)")
    p.add_argument("--reset-time", type=float, default=0.0, help="pause between episodes, seconds (default 0)")
    p.add_argument("--instruction", default="", help="task of every episode (default: the robot's instruction)")
    p.add_argument("--real-time-factor", type=float, help="with --up: sim_robot.real_time_factor")
    p.add_argument("--recorder", default="/recorder", help="recorder node name (default /recorder)")
    p.add_argument("--reset-service", default="/sim_robot/reset",
                   help="service that starts the robot's next episode, if it exists (default /sim_robot/reset)")
    p.add_argument("--no-keys", action="store_true", help="do not read keys from the terminal")
    p.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    p.add_argument("--ready-timeout", type=float, default=60.0,
                   help="seconds the graph may take to deliver the recorder's first camera and joint states "
                        "(default 60)")
    p.add_argument("--recorder-timeout", type=float, default=3.0,
                   help="the recorder counts as gone after this many seconds without its heartbeat (default 3)")
    p.set_defaults(func=run_record)


class RecorderWatch:
    """Notices a recorder that is gone: no heartbeat for ``timeout`` s (its process died or froze), and with
    --up also a process of the profile that exited or a graph that the lifecycle manager stopped."""

    def __init__(self, node, recorder: str, timeout: float, bringup=None):
        from vla_interfaces.msg import Heartbeat
        from vla_ros import node_qos
        self.recorder, self.timeout, self.bringup = recorder, timeout, bringup
        self.last = time.monotonic()
        self.heard = False
        self.subscription = node.create_subscription(Heartbeat, f"{recorder}/heartbeat", self._on_beat,
                                                     node_qos.HEARTBEAT)

    def _on_beat(self, msg) -> None:
        self.last = time.monotonic()
        self.heard = True

    def expect(self) -> None:
        """Judge silence from now if no heartbeat was heard yet (discovery of the topic can take a second)."""
        if not self.heard:
            self.last = time.monotonic()

    def gone(self) -> str | None:
        """Why the recorder cannot finish the episode, or None while it is alive."""
        if self.bringup is not None:
            for child in self.bringup.group.exited():
                return f"{child.name} exited with code {child.process.returncode} (log: {child.log_path})"
            status = self.bringup.status
            if status is not None and status.phase in ("safe_stop", "failed"):
                return f"the lifecycle manager stopped the graph: {status.reason}"
        silent = time.monotonic() - self.last
        if silent > self.timeout:
            return (f"no heartbeat from {self.recorder} for {silent:.1f} s (its process died or froze; the limit is "
                    f"--recorder-timeout {self.timeout:g} s)")
        return None


class Keys:
    """Single keys from a terminal (cbreak mode), as commands; nothing when stdin is not a terminal."""

    def __init__(self, enabled: bool):
        self.commands: list[str] = []
        self.enabled = enabled and sys.stdin.isatty()
        self._stop = threading.Event()
        if self.enabled:
            import termios
            import tty
            self._fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._stop.is_set():
            if not select.select([sys.stdin], [], [], 0.1)[0]:
                continue
            key = os.read(self._fd, 8).decode(errors="ignore")
            command = KEYS.get(key) or KEYS.get(key[:1])
            if command:
                self.commands.append(command)

    def close(self) -> None:
        self._stop.set()
        if self.enabled:
            import termios
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


def run_record(args, say=print) -> int:
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import MultiThreadedExecutor

    from std_srvs.srv import Trigger

    from vla_interfaces.action import RecordEpisode
    from vla_ros.spinning import SpinThread

    bringup, own_spinner = None, None
    if args.up:
        from vla_bringup.bringup import Bringup, BringupError, spec_lookup
        from vla_bringup.profile import load_profile, parse_overrides
        sets = list(args.set or [])
        if args.root:
            sets.append(f"{args.recorder.rstrip('/').rsplit('/', 1)[-1]}.root={os.path.abspath(args.root)}")
        if args.real_time_factor:
            sets.append(f"sim_robot.real_time_factor={args.real_time_factor}")
        profile = load_profile(args.up, None, parse_overrides(sets), spec_lookup)
        bringup = Bringup(profile, echo=False, say=lambda m: None)
        say(f"bringing up profile '{profile.name}' ({', '.join(n.name for n in profile.nodes)}); "
            f"logs: {bringup.log_dir}")
        try:
            up_s = bringup.start(timeout=120.0)
        except BringupError as exc:
            say(f"error: {exc}")
            bringup.shutdown()
            return 1
        say(f"all nodes active in {up_s:.1f} s")
        node = bringup.node
    else:
        rclpy.init()
        node = rclpy.create_node(f"vla_record_{os.getpid()}")
        own_executor = MultiThreadedExecutor(num_threads=2)
        own_executor.add_node(node)
        own_spinner = SpinThread(own_executor).start()
    keys = Keys(not args.no_keys)
    action = ActionClient(node, RecordEpisode, f"{args.recorder}/record_episode")
    watch = RecorderWatch(node, args.recorder, args.recorder_timeout, bringup)
    code = 1
    try:
        code = _session(args, node, action, keys, say, watch)
        return code
    except KeyboardInterrupt:
        # Ctrl-C ends the session like Esc: the episode in progress is saved, not lost.
        answer = _call(node, Trigger, f"{args.recorder}/save", Trigger.Request())
        say("interrupted: " + (answer.message if answer is not None and answer.success else "no episode in progress"))
        code = 130
        return code
    finally:
        keys.close()
        action.destroy()
        if bringup is not None:
            # After a failure nothing waits on the lifecycle manager: the command gates go down first.
            bringup.shutdown(orderly=code in (0, 130))
        else:
            if own_spinner.stop():
                node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()


def _call(node, srv_type, name: str, request, timeout: float = 5.0):
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        return future.result() if done.wait(timeout) else None
    finally:
        node.destroy_client(client)


def _session(args, node, action, keys: Keys, say, watch: RecorderWatch) -> int:
    from std_srvs.srv import Trigger

    from vla_interfaces.action import RecordEpisode
    from vla_interfaces.srv import MarkEpisode, ResetEpisode

    if not action.wait_for_server(timeout_sec=30.0):
        say(f"error: no RecordEpisode action at {args.recorder}/record_episode; start the recorder "
            f"(vla up record) or pass --up record")
        return 1
    if not _wait_ready(args, node, say):
        return 1
    # Discovery is not symmetric: the server is seen from here before it may have matched this client's reply
    # reader, and a goal response sent before that is lost (the episode records, this side hears nothing). A
    # moment after the server is seen lets that match finish on a loaded machine.
    time.sleep(1.0)
    tty = sys.stdout.isatty()
    if keys.enabled:
        say("keys: -> or n save early, <- or r re-record, s/f mark success/failure, Esc or q stop")
    deadline, saved, attempt, reports, stop = time.monotonic() + args.timeout, 0, 0, [], False
    unanswered = 0  # goals whose reply never came
    while saved < args.episodes and not stop:
        if time.monotonic() > deadline:
            say(f"error: timed out after {args.timeout:g} s with {saved} of {args.episodes} episodes saved")
            return 1
        attempt += 1
        progress = {"frames": 0, "elapsed": 0.0, "late": 0, "dropped": 0, "printed": 0.0}

        def on_feedback(msg, progress=progress):
            fb = msg.feedback
            progress.update(frames=fb.frames, elapsed=fb.elapsed, late=fb.late_frames, dropped=fb.dropped_frames)
            now = time.monotonic()
            if tty or now - progress["printed"] >= 2.0:
                progress["printed"] = now
                line = (f"episode {saved + 1}/{args.episodes} recording: {fb.frames} frames, {fb.elapsed:5.1f} s, "
                        f"{fb.late_frames} late, {fb.dropped_frames} dropped")
                if tty:
                    sys.stdout.write("\r\x1b[K" + line)
                    sys.stdout.flush()
                else:
                    say(line)

        goal = RecordEpisode.Goal(instruction=args.instruction, time_limit=args.episode_time)
        future = action.send_goal_async(goal, feedback_callback=on_feedback)
        handle = _wait_future(future, 10.0)
        if handle is None:
            # No answer is not a refusal: the goal may have been accepted and its reply lost. The episode that
            # goal may have opened cannot be followed without its handle, so it is discarded (said, never silent)
            # and the goal asked again.
            answer = _call(node, Trigger, f"{args.recorder}/discard", Trigger.Request())
            discarded = answer is not None and answer.success
            unanswered += 1
            say(f"the recorder did not answer the goal within 10 s (a reply lost on a busy machine?); "
                + ("discarded the episode it had opened; " if discarded else "")
                + ("asking again" if unanswered < 3 else "giving up"))
            if unanswered < 3:
                time.sleep(1.0 if discarded else 0.0)  # the discarded goal ends before the recorder takes another
                continue
            say(f"error: the recorder at {args.recorder} accepts no goals: check it is active "
                f"(`ros2 lifecycle get {args.recorder}`) and its log")
            return 1
        if not handle.accepted:
            say("error: the recorder refused the episode (not active, or already recording)")
            return 1
        if any(n == args.reset_service for n, _ in node.get_service_names_and_types()):
            _call(node, ResetEpisode, args.reset_service, ResetEpisode.Request(seed=-1, instruction=args.instruction))
        result_future = handle.get_result_async()
        watch.expect()
        while not result_future.done():
            while keys.commands:
                command = keys.commands.pop(0)
                if command in ("save", "stop"):
                    stop = stop or command == "stop"
                    _call(node, Trigger, f"{args.recorder}/save", Trigger.Request())
                elif command == "rerecord":
                    _call(node, Trigger, f"{args.recorder}/discard", Trigger.Request())
                else:
                    mark = MarkEpisode.Request.SUCCESS if command == "success" else MarkEpisode.Request.FAILURE
                    _call(node, MarkEpisode, f"{args.recorder}/mark", MarkEpisode.Request(mark=mark))
            if time.monotonic() > deadline:
                handle.cancel_goal_async()
                break
            why = watch.gone()
            if why is not None:
                if tty:
                    sys.stdout.write("\r\x1b[K")
                say(f"error: the recorder is gone: {why}; {saved} of {args.episodes} episodes saved, the episode in "
                    f"progress is lost")
                return 1
            time.sleep(0.05)
        if not result_future.done():
            continue
        result = result_future.result().result
        if tty:
            sys.stdout.write("\r\x1b[K")
        if result.success:
            saved += 1
            reports.append(result)
            say(f"episode {result.episode_index} saved ({saved}/{args.episodes}): {result.frames} frames, "
                f"{result.achieved_fps:.2f} fps achieved, {result.late_frames} late, {result.dropped_frames} dropped")
        else:
            if "missing" in result.message or "disk" in result.message:
                say(f"error: episode not saved: {result.message}; {saved} of {args.episodes} episodes saved (a "
                    "missing source: check that its node runs, `ros2 topic hz TOPIC`; a full disk: free space)")
                return 1
            say(f"episode not saved: {result.message}")
        if saved < args.episodes and not stop and args.reset_time > 0:
            say(f"reset: {args.reset_time:g} s")
            time.sleep(args.reset_time)
    summary = {"record": "session", "episodes_saved": saved, "attempts": attempt,
               "frames": sum(r.frames for r in reports), "late_frames": sum(r.late_frames for r in reports),
               "dropped_frames": sum(r.dropped_frames for r in reports),
               "episode_indices": [r.episode_index for r in reports]}
    print(json.dumps(summary), flush=True)
    return 0


def _wait_ready(args, node, say) -> bool:
    """Wait until the recorder's camera and joint-state topics have publishers and carry messages, so that the
    first episode is not lost to discovery; False (after saying why and what to do) on timeout."""
    from vla_interfaces.srv import ResetEpisode
    from vla_tools.readiness import GraphProbe, NotReady, Readiness, wait_ready

    def kick() -> None:  # a sim without auto_reset publishes nothing between episodes
        if any(n == args.reset_service for n, _ in node.get_service_names_and_types()):
            _call(node, ResetEpisode, args.reset_service, ResetEpisode.Request(seed=-1, instruction=args.instruction))
    readiness, probe = Readiness(args.recorder, recorder_reports=True), GraphProbe(node, args.recorder)
    say(f"waiting for {args.recorder}'s camera and joint-state topics (publishers matched, first messages)")
    try:
        waited = wait_ready(probe, readiness, args.ready_timeout, say, kick=kick)
    except NotReady as exc:
        say(f"error: {exc}")
        return False
    finally:
        probe.close()
    say(f"graph ready in {waited:.1f} s: " + ", ".join(sorted(readiness.topics)))
    return True


def _wait_future(future, timeout: float):
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return future.result() if done.wait(timeout) else None
