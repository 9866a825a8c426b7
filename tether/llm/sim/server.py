"""``SimServer``: a model provider on a real loopback socket, no keys, no network.

It speaks OpenAI chat completions (``POST /v1/chat/completions``), Anthropic messages
(``POST /v1/messages``) and Gemini generateContent
(``POST /{version}/models/{model}:generateContent``), so the official SDK clients
talk to it exactly as to the real services. Replies come from ``brain.py``.

Tests script faults per model: ``server.fail("gpt-x", status=429, retry_after=2)``
answers the next call to that model with a 429 and a ``Retry-After`` header;
``delay=`` makes a call slow (for timeouts and in-flight crashes). ``received``
records every request as it arrives and ``calls`` every request answered.

For rate-limit tests it counts what a provider would: ``peak_in_flight`` is the most
requests it held at once, ``arrivals`` the time (``time.monotonic()``) each request
arrived, and ``busiest(window)`` the most requests that arrived within any
``window`` seconds.

The server runs in a daemon thread (``http.server``), so it serves while the event
loop of the process is busy or blocked, and from any process that points at it.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from . import wire
from .brain import reply

__all__ = ["Fault", "SimServer"]

_GEMINI = re.compile(r"^/(?:v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")


@dataclass(frozen=True)
class Fault:
    """What to do to one call instead of (or before) answering it."""

    status: int | None = None  # answer with this HTTP error
    retry_after: float | None = None  # with this Retry-After header
    delay: float = 0.0  # wait this long first
    message: str = "simulated failure"


@dataclass(frozen=True)
class Call:
    """A request the server received: its wire format, model and answer status."""

    wire: str
    model: str
    status: int
    body: dict[str, Any]
    key: str = ""  # the API key the client presented


class SimServer:
    """A local HTTP server speaking the three providers' wire formats."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        # (wire, model) of every request as it arrives, before any delay or fault.
        self.received: list[tuple[str, str]] = []
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                sim._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SimServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._http.serve_forever, name="tether-sim", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(5)
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------

    def fail(
        self,
        model: str = "*",
        *,
        status: int | None = 500,
        retry_after: float | None = None,
        delay: float = 0.0,
        times: int = 1,
        message: str = "simulated failure",
    ) -> None:
        """The next ``times`` calls to ``model`` (``*``: any model) get this fault."""
        with self._lock:
            queue = self._faults.setdefault(model, deque())
            queue.extend([Fault(status, retry_after, delay, message)] * times)

    def slow(self, model: str = "*", delay: float = 1.0, *, times: int = 1) -> None:
        """The next ``times`` calls to ``model`` are answered after ``delay`` seconds."""
        self.fail(model, status=None, delay=delay, times=times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def served(self, model: str | None = None, *, ok: bool | None = None) -> int:
        """How many calls (to ``model``; answered 200 or not) the server received."""
        return sum(
            1
            for c in list(self.calls)
            if (model is None or c.model == model) and (ok is None or (c.status == 200) == ok)
        )

    def busiest(self, window: float) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(self.arrivals)
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] > window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def _fault(self, model: str) -> Fault | None:
        with self._lock:
            for key in (model, "*"):
                queue = self._faults.get(key)
                if queue:
                    return queue.popleft()
        return None

    # -- serving --------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self._answer(h)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("content-length") or 0)
        try:
            body = orjson.loads(h.rfile.read(length) or b"{}")
        except orjson.JSONDecodeError:
            self._send(h, 400, {"error": {"message": "body is not JSON"}})
            return
        gemini = _GEMINI.match(path)
        if path.endswith("/chat/completions"):
            kind, model = "openai", str(body.get("model", ""))
        elif path.endswith("/messages"):
            kind, model = "anthropic", str(body.get("model", ""))
        elif gemini is not None:
            kind, model = "gemini", gemini.group(1)
        else:
            self._send(h, 404, {"error": {"message": f"no route {path}"}})
            return
        self.received.append((kind, model))
        key = h.headers.get("authorization", "").removeprefix("Bearer ")
        key = key or h.headers.get("x-api-key") or h.headers.get("x-goog-api-key") or ""
        fault = self._fault(model)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            self.calls.append(Call(kind, model, fault.status, body, key))
            error = getattr(wire, f"{kind}_error")(fault.status, fault.message)
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            self._send(h, fault.status, error, headers)
            return
        if kind == "openai":
            messages, tools, schema, _ = wire.openai_request(body)
            out = wire.openai_response(model, reply(model, messages, tools, schema))
        elif kind == "anthropic":
            messages, tools, schema, forced = wire.anthropic_request(body)
            answer = reply(model, messages, tools, schema)
            out = wire.anthropic_response(model, answer, forced)
        else:
            messages, tools, schema, _ = wire.gemini_request(body)
            out = wire.gemini_response(model, reply(model, messages, tools, schema))
        self.calls.append(Call(kind, model, 200, body, key))
        self._send(h, 200, out)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = orjson.dumps(body)
        # The client may have given up (a timeout): nothing to tell it then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(data)
