"""What the loopback fakes share: a threaded HTTP server on 127.0.0.1 and the test hooks.

``LoopbackFake`` serves until ``stop()`` (or ``with``), reads each request body, counts it in
``requests``, applies an injected fault (``fail_next``: status and ``Retry-After``;
``slow_next``: delay before answering), checks ``Authorization: Bearer <token>`` and passes
the request on to ``answer``. Subclasses word their refusals the way their upstream does
(``refuse``, ``unauthorized``), fill ``calls`` and define what counts as ``writes``.
Exceptions inside the fake land in ``errors``; ``running`` asserts it stays empty.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self, TypeVar

FakeT = TypeVar("FakeT", bound="LoopbackFake")


@dataclass
class Fault:
    """One injected answer: an error status and/or a delay before the normal answer."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    method: str | None = None
    """Only a request with this method takes the fault (None: the next request)."""


class LoopbackFake:
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``token`` and test hooks."""

    methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    """HTTP methods the upstream serves; others get http.server's 501."""

    def __init__(self, token: str) -> None:
        self.token = token
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
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
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
        if method not in self.methods:
            return req.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({method!r})")
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self._lock:
            self.requests += 1
            fault = self._take_fault(method)
        if fault and fault.delay:
            self._stop.wait(fault.delay)
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self.refuse(req, fault.status, headers)
        if not self.admit(req):
            return None
        return self.answer(req, method, body)

    def admit(self, req: BaseHTTPRequestHandler) -> bool:
        """Authenticate the request; False when it has been answered with a refusal."""
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized(req)
            return False
        return True

    def refuse(self, req: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        """Answer an injected failure ``status``."""
        raise NotImplementedError

    def unauthorized(self, req: BaseHTTPRequestHandler) -> None:
        """Answer a request without the right bearer token."""
        raise NotImplementedError

    def answer(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        """Answer an authenticated request that no fault took."""
        raise NotImplementedError

    def echoed_auth(self, req: BaseHTTPRequestHandler) -> str:
        """With ``echo_auth``, the Authorization header quoted back (to test redaction)."""
        if not self.echo_auth:
            return ""
        return f"you sent Authorization: {req.headers.get('Authorization')}"

    def send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        req.send_response(status)
        if data:
            req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)


@contextmanager
def running(fake: FakeT) -> Iterator[FakeT]:
    """The fake, started; on exit it is stopped and must not have failed internally."""
    with fake:
        yield fake
    assert not fake.errors, f"the fake {type(fake).__name__} failed internally: {fake.errors!r}"


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

    def __init__(self, fake: LoopbackFake) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # A client that gave up on a slow answer closes its socket: not a fake bug.
        if exc is not None and not isinstance(exc, ConnectionError):
            self.fake.errors.append(exc)
