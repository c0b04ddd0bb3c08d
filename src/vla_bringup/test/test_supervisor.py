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
