"""A fake OCIS libregraph service, served for real on 127.0.0.1 (as behind OCIS' proxy).

Answers ``/graph/v1.0`` drives and groups and ``/graph/v1beta1`` space-root permissions from
``Registry``, with odata error bodies (``{"error": {"code", "message", "innererror"}}``), and
401 with ``WWW-Authenticate`` and an empty body without the right bearer token.

Test hooks: ``fail_next`` (status, ``Retry-After``), ``slow_next`` (delay before answering),
``echo_auth`` (error bodies quote the Authorization header, to test redaction), ``calls`` by
route and ``writes`` (POST/PATCH/DELETE that reached the API), ``registry`` for changes behind
the client's back, and ``errors`` (exceptions inside the fake; fixtures assert it stays empty).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.ocis_registry import GraphError, Registry

DEFAULT_TOKEN = "eyJhbGciOiJQUzI1NiJ9.ZGV6a3ktb2Npcy10ZXN0.c2lnbmF0dXJl"  # noqa: S105 - a test value
_WRITES = frozenset({"POST", "PATCH", "DELETE"})
_ODATA_CODES = {429: "tooManyRequests", 503: "serviceNotAvailable"}


@dataclass
class Fault:
    """One injected answer: an error status and/or a delay before the normal answer."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    method: str | None = None
    """Only a request with this method takes the fault (None: the next request)."""


class FakeOcis:
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``token`` and test hooks."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.registry = Registry(lambda: self.url)
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
        """Calls of a write endpoint (POST, PATCH, DELETE) that reached the graph service."""
        return sum(n for call, n in self.calls.items() if call.split(" ")[0] in _WRITES)

    def start(self) -> FakeOcis:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOcis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- test hooks ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
    ) -> None:
        with self._lock:
            self._faults.extend(Fault(status, retry_after, method=method) for _ in range(times))

    def slow_next(self, seconds: float, times: int = 1, method: str | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault(delay=seconds, method=method) for _ in range(times))

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fault.method in (None, method):
                self._faults.remove(fault)
                return fault
        return None

    # --- request handling ----------------------------------------------------------------

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        with self._lock:
            self.requests += 1
            fault = self._take_fault(method)
        if fault and fault.delay:
            self._stop.wait(fault.delay)
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            code = _ODATA_CODES.get(fault.status, "generalException")
            return self._error(req, GraphError(fault.status, code, "injected failure"), headers)
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            # OCIS' proxy answers an unknown token itself, with no body.
            body = (
                f"you sent Authorization: {req.headers.get('Authorization')}"
                if self.echo_auth
                else ""
            )
            return self._send(req, 401, body.encode(), {"WWW-Authenticate": 'Bearer realm="ocis"'})
        url = urlsplit(req.path)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return self._error(
                req, GraphError(400, "invalidRequest", "invalid body schema definition")
            )
        with self._lock:
            try:
                status, payload = self.registry.route(
                    method, url.path, dict(parse_qsl(url.query)), req.headers, body
                )
            except GraphError as err:
                return self._error(req, err)
            finally:
                # Refused calls count too: "no write" means no write endpoint was called.
                self.calls[f"{method} {_template(url.path)}"] += 1
        data = json.dumps(payload).encode() if payload is not None else b""
        return self._send(req, status, data)

    def _error(
        self, req: BaseHTTPRequestHandler, err: GraphError, headers: dict[str, str] | None = None
    ) -> None:
        message = err.message
        if self.echo_auth:
            message += f" (you sent Authorization: {req.headers.get('Authorization')})"
        payload = {
            "error": {
                "code": err.code,
                "innererror": {
                    "date": datetime.now(UTC).isoformat(),
                    "request-id": str(uuid.uuid4()),
                },
                "message": message,
            }
        }
        self._send(req, err.status, json.dumps(payload).encode(), headers)

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        req.send_response(status)
        if data:
            req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)


def _template(path: str) -> str:
    """The route with ids replaced: ``/graph/v1.0/drives/{id}``."""
    parts = path.strip("/").split("/")
    named = (
        {3: "{id}"}
        if parts[:3] in (["graph", "v1.0", "drives"], ["graph", "v1beta1", "drives"])
        else {}
    )
    if parts[-2:-1] == ["permissions"] and len(parts) == 7:
        named[6] = "{perm}"
    return "/" + "/".join(named.get(i, p) for i, p in enumerate(parts))


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

    def do_PATCH(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake.handle(self, "PATCH")

    def do_DELETE(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake.handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeOcis) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # A client that gave up on a slow answer closes its socket: not a fake bug.
        if exc is not None and not isinstance(exc, ConnectionError):
            self.fake.errors.append(exc)


@contextmanager
def running_ocis(token: str = DEFAULT_TOKEN) -> Iterator[FakeOcis]:
    """A started fake; on exit it is stopped and must not have failed internally."""
    fake = FakeOcis(token)
    with fake:
        yield fake
    assert not fake.errors, f"the fake OCIS failed internally: {fake.errors!r}"  # noqa: S101
