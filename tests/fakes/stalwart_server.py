"""A fake Stalwart >= 0.16 JMAP management server, served for real on 127.0.0.1.

Speaks the documented protocol: ``GET /jmap/session`` (capabilities, ``apiUrl``), ``POST /jmap/``
with ``using`` + ``methodCalls``, request-level problem+json errors (``notJSON``, ``notRequest``,
``unknownCapability``), method-level ``["error", {...}]``, SetErrors from ``Registry``, and 401
problem+json with ``WWW-Authenticate`` without the right bearer token.

Test hooks: ``fail_next`` (status, ``Retry-After``), ``slow_next`` (delay before answering),
``echo_auth`` (error bodies echo the Authorization header, to test redaction), counters of
method calls and writes, direct access to ``registry`` for out-of-band changes, and ``errors``
(exceptions inside the fake; a test fixture asserts it stays empty).
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.stalwart_registry import Registry

CORE = "urn:ietf:params:jmap:core"
STALWART = "urn:stalwart:jmap"
DEFAULT_TOKEN = "API_ZGV6a3ktdGVzdC10b2tlbi1kby1ub3QtbGVhaw"  # noqa: S105 - a test value


@dataclass
class Fault:
    """One injected answer: an error status and/or a delay before the normal answer."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0


class FakeStalwart:
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``token`` and test hooks."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, mx_host: str = "mail.dezky.test") -> None:
        self.token = token
        self.registry = Registry(mx_host)
        self.calls: Counter[str] = Counter()
        self.requests = 0
        self.echo_auth = False
        self.errors: list[BaseException] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def writes(self) -> int:
        """``x:*/set`` method calls received (every write endpoint of the API)."""
        return sum(n for name, n in self.calls.items() if name.endswith("/set"))

    def start(self) -> FakeStalwart:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeStalwart:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test hooks ----------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault(status, retry_after) for _ in range(times))

    def slow_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault(delay=seconds) for _ in range(times))

    # --- request handling ----------------------------------------------------------------

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self._lock:
            self.requests += 1
            fault = self._faults.popleft() if self._faults else None
        if fault and fault.delay:
            self._stop.wait(fault.delay)
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._problem(req, fault.status, "about:blank", "Injected failure", headers)
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            detail = "You have to authenticate first."
            return self._problem(
                req, 401, "about:blank", detail, {"WWW-Authenticate": 'Bearer realm="Stalwart"'}
            )
        path = req.path.split("?")[0]
        if method == "GET" and path == "/jmap/session":
            return self._send(req, 200, self._session())
        if method == "POST" and path in ("/jmap", "/jmap/"):
            return self._jmap(req, body)
        return self._problem(req, 404, "about:blank", "Not found")

    def _session(self) -> dict[str, Any]:
        return {
            "capabilities": {
                CORE: {"maxSizeUpload": 50000000, "maxObjectsInGet": 500, "maxObjectsInSet": 500,
                       "maxCallsInRequest": 16, "maxConcurrentRequests": 4},
                STALWART: {},
            },
            "accounts": {"admin": {"name": "admin@dezky.test", "isPersonal": True,
                                   "isReadOnly": False, "accountCapabilities": {STALWART: {}}}},
            "primaryAccounts": {STALWART: "admin"},
            "username": "admin@dezky.test",
            "apiUrl": f"{self.url}/jmap/",
            "downloadUrl": f"{self.url}/jmap/download/{{accountId}}/{{blobId}}/{{name}}",
            "uploadUrl": f"{self.url}/jmap/upload/{{accountId}}/",
            "eventSourceUrl": f"{self.url}/jmap/eventsource",
            "state": "s1",
        }  # fmt: skip

    def _jmap(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            return self._problem(req, 400, "urn:ietf:params:jmap:error:notJSON", "Invalid JSON")
        request = request if isinstance(request, dict) else {}
        using, calls = request.get("using"), request.get("methodCalls")
        if not isinstance(using, list) or not isinstance(calls, list):
            return self._problem(req, 400, "urn:ietf:params:jmap:error:notRequest", "Bad request")
        unknown = [u for u in using if u not in (CORE, STALWART)]
        if unknown:
            kind = "urn:ietf:params:jmap:error:unknownCapability"
            return self._problem(req, 400, kind, f"Unknown capability {unknown[0]}")
        responses = []
        with self._lock:
            self.registry.run_tasks()
            for name, args, call_id in calls:
                self.calls[name] += 1
                handler = self.registry.method(name) if STALWART in using else None
                if handler is None:
                    responses.append(["error", {"type": "unknownMethod"}, call_id])
                    continue
                kind, result = handler(args)
                responses.append(["error" if kind == "error" else name, result, call_id])
        self._send(req, 200, {"methodResponses": responses, "sessionState": "s1"})

    def _problem(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        kind: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if self.echo_auth:
            detail += f" (you sent Authorization: {req.headers.get('Authorization')})"
        problem = {"type": kind, "status": status, "title": "Error", "detail": detail}
        self._send(req, status, problem, headers, "application/problem+json")

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise delayed ACKs add ~40 ms per call.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake.handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStalwart) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # A client that gave up on a slow answer closes its socket: not a fake bug.
        if exc is not None and not isinstance(exc, ConnectionError):
            self.fake.errors.append(exc)
