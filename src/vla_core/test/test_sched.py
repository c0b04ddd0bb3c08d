"""SVT-AV1 run as root makes the thread that opens it, and the threads it starts, SCHED_FIFO 99. A real-time thread
that busy-waits starves the DDS threads it waits on, and child processes inherit the policy: our encoder and test
fixtures must leave every thread as they found it."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from vla_core import sched
from vla_core.dataset.video import VideoEncoder

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="SVT-AV1 raises thread priority only when run as root; "
                                                 "as another user there is no escalation to undo")


def svt_encode_raw(path):
    """Open SVT-AV1 through PyAV directly, without any guard: escalates the calling thread when run as root."""
    import av
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libsvtav1", rate=10, options={"preset": "12"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@needs_root
def test_unguarded_svt_av1_does_escalate_here(tmp_path):
    # The premise of the guard, shown on this machine: without it the calling thread becomes real-time.
    with sched.no_realtime_escalation() as before:
        svt_encode_raw(tmp_path / "raw.mp4")
        assert sched.realtime_threads() - before, "SVT-AV1 left every thread's policy alone here"
    assert not sched.realtime_threads() - before


@needs_root
def test_av1_encoder_leaves_no_thread_real_time_while_and_after_encoding(tmp_path):
    before = sched.realtime_threads()
    enc = VideoEncoder(tmp_path / "cam.mp4", 32, 32, 10.0, codec="libsvtav1")
    for i in range(12):
        enc.put(np.full((32, 32, 3), i * 10, np.uint8), i)
    deadline = time.monotonic() + 30
    while enc.frames < 3 and time.monotonic() < deadline:  # the encoder is open and its threads started
        time.sleep(0.01)
    assert enc.frames >= 3
    assert sched.realtime_threads() - before == set(), "encoder threads run real-time while encoding"
    enc.close()
    assert sched.realtime_threads() - before == set()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.skipif(not sched._SUPPORTED, reason="per-thread scheduling policies are read from Linux's /proc")
def test_threads_real_time_before_keep_their_policy():
    # A control loop started real-time on purpose is not demoted; one made real-time inside the block is.
    import threading
    done = threading.Event()
    tid = []

    def worker():
        tid.append(threading.get_native_id())
        done.wait(10)
    t = threading.Thread(target=worker)
    t.start()
    while not tid:
        time.sleep(0.001)
    try:
        os.sched_setscheduler(tid[0], os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        done.set()
        t.join()
        pytest.skip("this user may not set a real-time policy (needs CAP_SYS_NICE or RLIMIT_RTPRIO)")
    try:
        with sched.no_realtime_escalation():
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        assert os.sched_getscheduler(tid[0]) == os.SCHED_FIFO
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        done.set()
        t.join()
