"""One camera stream -> one MP4 (PyAV), encoded on a background thread so that sampling never waits.

Frames are (H, W, 3) uint8 RGB; the stream is yuv420p with presentation times in 1/fps units taken from the
frames' real timestamps, so a gap in the recording is a gap in the video (LeRobot decodes by timestamp).
"""
from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vla_core import sched
from vla_core.dataset.layout import fsync_file

CODECS = ("libx264", "libsvtav1")


class VideoError(RuntimeError):
    """The encoder failed (disk full, bad size...); the episode it belonged to cannot be saved."""


class VideoEncoder:
    """Encode frames to ``path`` on a thread. ``put`` never blocks; ``close`` waits for the backlog."""

    SYNC_EVERY = 150  # frames between fsyncs of the file being written

    def __init__(self, path: Path, height: int, width: int, fps: float, codec: str = "libx264",
                 crf: int = 23, gop: int = 10, preset: str = "veryfast"):
        if codec not in CODECS:
            raise ValueError(f"video codec '{codec}' is not supported; use one of {', '.join(CODECS)}")
        if height % 2 or width % 2:
            raise ValueError(f"video size {width}x{height} must be even for yuv420p; set an even camera size")
        self.path, self.height, self.width, self.fps = Path(path), height, width, fps
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self.frames = 0
        self._hist = np.zeros((3, 256), dtype=np.int64)  # per-channel histogram of subsampled pixels
        self._options = {"crf": str(crf), "g": str(gop)}
        if codec == "libx264":
            self._options.update(preset=preset, tune="zerolatency")
        else:
            self._options["preset"] = "12"
        self._codec = codec
        self._thread = threading.Thread(target=self._run, name=f"encode-{self.path.stem}", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def put(self, rgb: np.ndarray, pts: int) -> None:
        """Queue one frame at presentation time ``pts`` (in 1/fps units, strictly increasing)."""
        if self._error is not None:
            raise VideoError(f"encoding {self.path.name} failed: {self._error}")
        self._queue.put((rgb, pts))

    def close(self) -> dict:
        """Flush and close the file; return per-channel image stats in [0, 1] (LeRobot's (3, 1, 1) form,
        quantiles included)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise VideoError(f"encoding {self.path.name} failed: {self._error}")
        from vla_core.dataset.layout import histogram_stats
        return histogram_stats(self._hist, self.frames)

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        # SVT-AV1 makes the thread that opens it, and the threads it starts, real-time when run as root: put them
        # back after the first frame (when the encoder opens) and whenever this thread is found escalated again.
        keep = sched.realtime_threads()
        was_realtime = threading.get_native_id() in keep
        container = None
        try:
            container = av.open(str(self.path), mode="w", format="mp4")
            fps = Fraction(self.fps).limit_denominator(1000)
            stream = container.add_stream(self._codec, rate=fps, options=self._options)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.time_base = 1 / fps
            while True:
                item = self._queue.get()
                if item is None:
                    break
                rgb, pts = item
                self._accumulate(rgb)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = pts
                for packet in stream.encode(frame):
                    container.mux(packet)
                if self.frames == 0 or sched.this_thread_escalated(was_realtime):
                    sched.demote(keep)
                self.frames += 1
                if self.frames % self.SYNC_EVERY == 0:
                    fsync_file(self.path)  # a little at a time, so that committing the episode is quick
            for packet in stream.encode(None):
                container.mux(packet)
        except BaseException as exc:  # noqa: BLE001 - reported by put/close on the caller's thread
            self._error = exc
            while True:  # drain so that put() callers never grow the queue forever
                try:
                    if self._queue.get_nowait() is None:
                        break
                except queue.Empty:
                    break
        finally:
            if container is not None:
                try:
                    container.close()
                except BaseException as exc:  # noqa: BLE001
                    self._error = self._error or exc
            sched.demote(keep)

    def _accumulate(self, rgb: np.ndarray) -> None:
        sub = rgb[::8, ::8].reshape(-1, 3)
        for c in range(3):
            self._hist[c] += np.bincount(sub[:, c], minlength=256)


class VideoReader:
    """Sequential access to one video file holding one or many episodes (LeRobot packs many into one MP4 and
    locates each by ``from_timestamp``/``to_timestamp``). Asking for episodes in file order decodes the file once:
    the decoder keeps its place, and seeks only to jump forward over a gap or back."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), float(fps)
        self._tolerance = 0.25 / self.fps
        self._container = None
        self._frames = None
        self._pending: tuple[float, object] | None = None  # the next decoded frame, not yet handed out
        self._position = 0.0  # time of the next frame the iterator would give
        self.frames_decoded = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = self._pending = None

    def _open(self, from_time: float) -> None:
        self.close()
        self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if from_time > self._tolerance:
            self._container.seek(int((from_time - self._tolerance) / stream.time_base), stream=stream, backward=True)
        base = stream.time_base

        def frames():
            for frame in self._container.decode(stream):
                t = float(frame.pts * base) if frame.pts is not None else float(frame.time)
                yield t, frame

        self._frames = frames()
        self._position = from_time

    def _next(self):
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        item = next(self._frames, None)
        if item is not None:
            self.frames_decoded += 1
        return item

    def read(self, from_time: float, to_time: float | None = None) -> list[tuple[float, np.ndarray]]:
        """(time - from_time, RGB) of every frame with from_time <= time < to_time (seconds, the file's timeline;
        ``to_time`` None: to the end of the file)."""
        tol = self._tolerance
        restart = self._frames is None or from_time < self._position - tol
        if not restart and self._pending is not None and self._pending[0] > from_time + tol:
            restart = True  # the frames asked for lie before the one already decoded
        if not restart and from_time - self._position > 2.0:  # a long jump forward: seek rather than decode
            restart = True
        if restart:
            self._open(from_time)
        out: list[tuple[float, np.ndarray]] = []
        while True:
            item = self._next()
            if item is None:
                self._position = float("inf")
                break
            t, frame = item
            if t < from_time - tol:
                continue
            if to_time is not None and t >= to_time - tol:
                self._pending = item
                self._position = t
                break
            out.append((t - from_time, frame.to_ndarray(format="rgb24")))
            self._position = t
        return out


def decode_frames(path: Path, fps: float, from_time: float = 0.0, count: int | None = None
                  ) -> list[tuple[float, np.ndarray]]:
    """Decode frames at or after ``from_time`` (seconds, the file's own timeline) as (time, RGB) pairs."""
    out: list[tuple[float, np.ndarray]] = []
    tolerance = 0.25 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if from_time > tolerance:
            container.seek(int((from_time - tolerance) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
            if t < from_time - tolerance:
                continue
            out.append((t, frame.to_ndarray(format="rgb24")))
            if count is not None and len(out) == count:
                break
    return out
