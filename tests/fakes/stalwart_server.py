"""A fake Stalwart >= 0.16 JMAP management server, served for real on 127.0.0.1.

Speaks the documented protocol: ``GET /jmap/session`` (capabilities, ``apiUrl``), ``POST /jmap/``
with ``using`` + ``methodCalls``, request-level problem+json errors (``notJSON``, ``notRequest``,
``unknownCapability``), method-level ``["error", {...}]``, SetErrors from ``Registry``, and 401
problem+json with ``WWW-Authenticate`` without the right bearer token.

Test hooks, from ``http_fake.LoopbackFake``: ``fail_next`` (status, ``Retry-After``),
``slow_next`` (delay before answering), ``echo_auth`` (error bodies echo the Authorization
header, to test redaction), ``errors`` (exceptions inside the fake; ``running`` asserts it stays
empty); of this fake: counters of method calls and writes and direct access to ``registry`` for
out-of-band changes.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http_fake import LoopbackFake
from tests.fakes.stalwart_registry import Registry

CORE = "urn:ietf:params:jmap:core"
STALWART = "urn:stalwart:jmap"
DEFAULT_TOKEN = "API_ZGV6a3ktdGVzdC10b2tlbi1kby1ub3QtbGVhaw"  # noqa: S105 - a test value


class FakeStalwart(LoopbackFake):
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``token`` and test hooks."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, mx_host: str = "mail.dezky.test") -> None:
        super().__init__(token)
        self.registry = Registry(mx_host)

    @property
    def writes(self) -> int:
        """``x:*/set`` method calls received (every write endpoint of the API)."""
        return sum(n for name, n in self.calls.items() if name.endswith("/set"))

    # --- request handling ----------------------------------------------------------------

    def refuse(self, req: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        self._problem(req, status, "about:blank", "Injected failure", headers)

    def unauthorized(self, req: BaseHTTPRequestHandler) -> None:
        detail = "You have to authenticate first."
        self._problem(
            req, 401, "about:blank", detail, {"WWW-Authenticate": 'Bearer realm="Stalwart"'}
        )

    def answer(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
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
            detail += f" ({self.echoed_auth(req)})"
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
        self.send(req, status, json.dumps(payload).encode(), headers, content_type)
