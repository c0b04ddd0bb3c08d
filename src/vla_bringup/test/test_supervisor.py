import io
import sys
import time

from vla_bringup.supervisor import ProcessGroup


def test_output_is_prefixed_logged_and_exits_reported(tmp_path):
    out = io.StringIO()
    group = ProcessGroup(tmp_path, echo=out)
    group.start("quick", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"])
    deadline = time.monotonic() + 10
    exited = []
    while not exited and time.monotonic() < deadline:
        exited = group.exited()
        time.sleep(0.05)
    assert [c.name for c in exited] == ["quick"] and exited[0].process.returncode == 3
    time.sleep(0.2)
    assert "[quick] hello" in out.getvalue()
    assert (tmp_path / "quick.log").read_text().strip() == "hello"
    assert group.exited() == []  # reported once


def test_stop_escalates_to_sigkill_for_a_process_that_ignores_sigint(tmp_path):
    group = ProcessGroup(tmp_path, echo=None)
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = group.start("stubborn", [sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while "ready" not in child.tail and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    codes = group.stop(timeout=0.5)
    assert codes["stubborn"] == -9
    assert time.monotonic() - t0 < 10


def test_children_do_not_outlive_a_killed_supervisor(tmp_path):
    """A supervisor killed with SIGKILL takes its children with it (no orphaned nodes)."""
    import os
    import signal
    import subprocess
    import textwrap
    script = textwrap.dedent(f"""
        import sys, time
        from vla_bringup.supervisor import ProcessGroup
        group = ProcessGroup({str(tmp_path)!r}, echo=None)
        child = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.process.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child_pid}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting to be reaped by init
                return
        time.sleep(0.05)
    raise AssertionError(f"child {child_pid} still running 10 s after its supervisor was killed")


def test_stop_takes_the_named_children_down_first(tmp_path):
    """The command gate (the safety shield) is stopped, and waited for, before any other process is signalled."""
    code = ("import signal, sys, time\n"
            "def bye(*_):\n"
            "    time.sleep({linger})\n"
            "    open({out!r}, 'w').write(repr(time.time()))\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGINT, bye)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    group = ProcessGroup(tmp_path, echo=None)
    robot = group.start("robot", [sys.executable, "-c", code.format(linger=0.0, out=str(tmp_path / "robot"))])
    gate = group.start("gate", [sys.executable, "-c", code.format(linger=0.5, out=str(tmp_path / "gate"))])
    deadline = time.monotonic() + 10
    while not ("ready" in robot.tail and "ready" in gate.tail) and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = group.stop(timeout=5.0, first=["gate"])
    assert codes == {"robot": 0, "gate": 0}
    gate_done = float((tmp_path / "gate").read_text())
    robot_done = float((tmp_path / "robot").read_text())
    assert gate_done < robot_done, "the robot's process was stopped before the gate had exited"
