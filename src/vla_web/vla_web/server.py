"""The operator page's HTTP server (stdlib, no ROS): the page, its status, camera frames and the buttons.

Every request under ``/api/`` carries the token (header ``X-VLA-Token``, ``Authorization: Bearer``, or
``?token=`` for images); without it the answer is 401 with a JSON body that says how to get in. ``GET /`` serves
the page itself, which holds no data and reads the token from the URL's fragment (``/#token=...``, never sent to
the server or kept in its logs).

- ``GET /api/status?since=<t>``: :meth:`ViewState.snapshot` (commands newer than ``t`` only) plus the status line.
- ``GET /api/camera/<i>?after=<seq>&drawn=<seq>``: the newest JPEG of camera ``i`` newer than ``after``, waiting
  up to 2 s (a long poll: a frame leaves as soon as it exists); headers ``X-Seq`` and ``X-Stamp``; 204 when none
  came. ``drawn`` says the page has drawn that frame: its latency from the camera's stamp is recorded (the next
  request's trip included: an upper bound), with no request of its own.
- ``POST /api/<action>`` for every action in :data:`ACTIONS`: calls it and answers ``{"ok", "message"}``
  (502 when the service said no or did not answer). ``deploy`` takes ``{"artifact": "name[/version]"}``.
- Recorded episodes (:mod:`vla_web.episode_library`): ``GET /api/datasets``, ``GET /api/episodes?dataset=<i>``,
  and ``POST /api/play_episode`` with ``{"dataset": i, "episode": j}``, which logs that episode into the Rerun
  view as a recording of its own (400 with the reason for an index that does not exist).
"""
from __future__ import annotations

import json
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Callable

from vla_core.dataset import DatasetError
from vla_core.errors import ConfigError
from vla_web.auth import TOKEN_HEADER, token_from, token_ok
from vla_web.view_state import ViewState, status_line

ACTIONS = ("estop", "reset", "save", "discard", "mark_success", "mark_failure", "deploy", "rollback")
MAX_ARTIFACT_CHARS = 300
LONG_POLL_S = 2.0
MAX_BODY = 4096


def page_html() -> bytes:
    return files("vla_web").joinpath("static/operator.html").read_bytes()


class OperatorServer:
    """Serves the page on ``bind``:``port`` from a thread; ``act(name, args) -> (ok, message)`` runs a button
    (``args``: the request's JSON object; ``deploy`` has ``artifact``, checked here);
    ``now()`` is the node clock (s) that camera stamps are on."""

    def __init__(self, state: ViewState, act: Callable[[str, dict], tuple[bool, str]], now: Callable[[], float],
                 token: str, bind: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] | None = None,
                 library=None):
        self.state, self.act, self.now, self.token = state, act, now, token
        self.library = library  # an EpisodeLibrary, or None: no recorded episodes on this page
        self.log = log or (lambda text: None)
        self.requests = {"ok": 0, "unauthorized": 0, "bad": 0}
        self.extra: dict = {}  # more for /api/status (e.g. the Rerun viewer's address)
        self._page = page_html()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            self.httpd = ThreadingHTTPServer((bind, port), handler)
        except OSError as exc:
            raise ConfigError(f"the operator page cannot listen on {bind}:{port}: {exc.strerror}; pick another "
                              "port (port:=0 takes any free one) or bind address") from exc
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    def url(self, host: str | None = None) -> str:
        bind, port = self.address
        host = host or ("127.0.0.1" if bind in ("0.0.0.0", "") else bind)
        return f"http://{host}:{port}/#token={self.token}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="operator-page", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop answering (the port stays bound; :meth:`start` again serves again)."""
        if self.thread is None:
            return
        self.httpd.shutdown()
        with self.state.lock:  # wake long polls
            self.state.new_frame.notify_all()
        self.thread.join(2.0)
        self.thread = None

    def close(self) -> None:
        self.stop()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_ref: OperatorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep stderr quiet: the node logs what matters
        pass

    # ---- helpers -----------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _authorized(self, query: dict) -> bool:
        srv = self.server_ref
        if token_ok(token_from(self.headers, query), srv.token):
            return True
        srv.requests["unauthorized"] += 1
        self._json(HTTPStatus.UNAUTHORIZED, {
            "ok": False, "error": f"missing or wrong token: send it as the {TOKEN_HEADER} header (the page does "
                                  "this when opened from the URL the web_view node printed at start-up, "
                                  "http://HOST:PORT/#token=...)"})
        return False

    # ---- routes ------------------------------------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        srv = self.server_ref
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, srv._page, "text/html; charset=utf-8")
            return
        if not url.path.startswith("/api/"):
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": f"no page {url.path}; open /"})
            return
        if not self._authorized(query):
            return
        if url.path == "/api/status":
            try:
                since = float(query.get("since", ["-inf"])[0])
            except ValueError:
                since = float("-inf")
            snap = srv.state.snapshot(since)
            snap["status_line"] = status_line(snap)
            snap["now"] = srv.now()
            snap.update(srv.extra)
            srv.requests["ok"] += 1
            self._json(HTTPStatus.OK, snap)
            return
        if url.path in ("/api/datasets", "/api/episodes"):
            self._library(url.path, query)
            return
        if url.path.startswith("/api/camera/"):
            try:
                camera = int(url.path.rsplit("/", 1)[1])
                after = int(query.get("after", ["0"])[0])
                drawn = int(query.get("drawn", ["0"])[0])
                if drawn:
                    stamp = srv.state.stamp_of(camera, drawn)
                    if stamp is not None:
                        srv.state.latency["displayed"].add((srv.now() - stamp) * 1e3)
                frame = srv.state.wait_frame(camera, after, LONG_POLL_S)
            except (ValueError, IndexError) as exc:
                srv.requests["bad"] += 1
                self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": f"{url.path}: {exc}"})
                return
            if frame is None:
                self._send(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                return
            srv.requests["ok"] += 1
            self._send(HTTPStatus.OK, frame.jpeg, "image/jpeg",
                       {"X-Seq": str(frame.seq), "X-Stamp": repr(frame.stamp)})
            return
        self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": f"no API {url.path}"})

    def _library(self, path: str, args) -> None:
        """The recorded-episode routes; ``args``: the query (GET) or the JSON body (POST)."""
        srv = self.server_ref
        if srv.library is None:
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": "this page has no recorded episodes (the "
                                                                    "datasets parameter is empty)"})
            return
        try:
            if path == "/api/datasets":
                answer = {"ok": True, "datasets": srv.library.datasets()}
            elif path == "/api/episodes":
                raw = args.get("dataset", [""])[0]
                try:
                    dataset = int(raw)
                except ValueError:
                    raise DatasetError(f"dataset must be an index from /api/datasets, got {raw!r}") from None
                answer = {"ok": True, "dataset": dataset, "episodes": srv.library.episodes(dataset)}
            else:
                request = json.loads(args) if args.strip() else {}
                if not isinstance(request, dict):
                    raise DatasetError('expected {"dataset": i, "episode": j}')
                name, frames = srv.library.play(request.get("dataset"), request.get("episode"))
                answer = {"ok": True, "message": f"{name}: {frames} frames in the Rerun viewer (its recordings "
                                                  "panel lists it beside the live view)",
                          "viewer": srv.extra.get("viewer")}
                srv.log(f"operator page: play_episode: {name} ({frames} frames)")
        except (DatasetError, ValueError, OSError, RuntimeError) as exc:  # a broken file says what broke
            srv.requests["bad"] += 1
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": f"{path[len('/api/'):]}: {exc}"})
            return
        srv.requests["ok"] += 1
        self._json(HTTPStatus.OK, answer)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        srv = self.server_ref
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the body is not read: this connection cannot carry another request
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else HTTPStatus.BAD_REQUEST,
                       {"ok": False, "error": f"Content-Length {self.headers.get('Content-Length')!r}: send at most "
                                             f"{MAX_BODY} bytes of JSON"})
            return
        body = self.rfile.read(length) if length else b""
        if not url.path.startswith("/api/"):
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": f"no page {url.path}"})
            return
        if not self._authorized(query):
            return
        name = url.path[len("/api/"):]
        if name == "play_episode":
            self._library(url.path, body)
            return
        if name not in ACTIONS:
            srv.requests["bad"] += 1
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": f"no action {name!r}; one of {', '.join(ACTIONS)}"})
            return
        try:
            args = json.loads(body) if body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("expected a JSON object")
            if name == "deploy":
                artifact = args.get("artifact")
                if not isinstance(artifact, str) or not artifact.strip() or len(artifact) > MAX_ARTIFACT_CHARS:
                    raise ValueError(f"deploy needs {{\"artifact\": \"name[/version]\"}} (a registry name, at most "
                                     f"{MAX_ARTIFACT_CHARS} characters), got {artifact!r}")
        except ValueError as exc:
            srv.requests["bad"] += 1
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": f"{name}: {exc}"})
            return
        ok, message = srv.act(name, args)
        srv.requests["ok"] += 1
        srv.log(f"operator page: {name}: {'done' if ok else 'refused'}: {message}")
        self._json(HTTPStatus.OK if ok else HTTPStatus.BAD_GATEWAY, {"ok": ok, "message": message})
