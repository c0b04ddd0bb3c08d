"""Calling a service and waiting for its answer from a thread that does not spin the client's node (a worker
thread, an action's execute callback on a multi-threaded executor): the executor delivers the answer."""
from __future__ import annotations

import threading
from typing import Any


class ServiceCallFailed(RuntimeError):
    """The service was not available or did not answer in time; the message names the service and which."""


def call_and_wait(client: Any, request: Any, timeout_s: float, *, name: str | None = None,
                  unavailable_hint: str = "") -> Any:
    """``client``'s response to ``request``, waiting at most ``timeout_s`` seconds for it (and at most
    min(timeout_s, 10) s for the service to appear).

    Args:
        name: the service as errors name it (default ``client.srv_name``).
        unavailable_hint: what to check when the service is not there (e.g. "is the policy node running?").

    Raises:
        ServiceCallFailed: no such service, or no answer within ``timeout_s``.
    """
    name = name or client.srv_name
    if not client.wait_for_service(timeout_sec=min(timeout_s, 10.0)):
        raise ServiceCallFailed(f"{name} is not available" + (f" ({unavailable_hint})" if unavailable_hint else ""))
    answered = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: answered.set())
    if not answered.wait(timeout_s):
        raise ServiceCallFailed(f"{name} did not answer within {timeout_s:g} s")
    return future.result()
