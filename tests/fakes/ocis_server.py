"""A fake OCIS libregraph service, served for real on 127.0.0.1 (as behind OCIS' proxy).

Answers ``/graph/v1.0`` drives and groups and ``/graph/v1beta1`` space-root permissions from
``Registry``, with odata error bodies (``{"error": {"code", "message", "innererror"}}``), and
401 with ``WWW-Authenticate`` and an empty body without the right bearer token.

Test hooks, from ``http_fake.LoopbackFake``: ``fail_next`` (status, ``Retry-After``, method),
``slow_next`` (delay before answering), ``echo_auth`` (error bodies quote the Authorization
header, to test redaction), ``errors`` (exceptions inside the fake; ``running`` asserts it stays
empty); of this fake: ``calls`` by route and ``writes`` (POST/PATCH/DELETE that reached the
API) and ``registry`` for changes behind the client's back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.http_fake import LoopbackFake
from tests.fakes.ocis_registry import GraphError, Registry

DEFAULT_TOKEN = "eyJhbGciOiJQUzI1NiJ9.ZGV6a3ktb2Npcy10ZXN0.c2lnbmF0dXJl"  # noqa: S105 - a test value
_WRITES = frozenset({"POST", "PATCH", "DELETE"})
_ODATA_CODES = {429: "tooManyRequests", 503: "serviceNotAvailable"}


class FakeOcis(LoopbackFake):
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``token`` and test hooks."""

    methods = frozenset({"GET", "POST", "PATCH", "DELETE"})

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__(token)
        self.registry = Registry(lambda: self.url)

    @property
    def writes(self) -> int:
        """Calls of a write endpoint (POST, PATCH, DELETE) that reached the graph service."""
        return sum(n for call, n in self.calls.items() if call.split(" ")[0] in _WRITES)

    # --- request handling ----------------------------------------------------------------

    def refuse(self, req: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        code = _ODATA_CODES.get(status, "generalException")
        self._error(req, GraphError(status, code, "injected failure"), headers)

    def unauthorized(self, req: BaseHTTPRequestHandler) -> None:
        # OCIS' proxy answers an unknown token itself, with no body.
        body = self.echoed_auth(req).encode()
        self.send(req, 401, body, {"WWW-Authenticate": 'Bearer realm="ocis"'})

    def answer(self, req: BaseHTTPRequestHandler, method: str, raw: bytes) -> None:
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
        return self.send(req, status, data)

    def _error(
        self, req: BaseHTTPRequestHandler, err: GraphError, headers: dict[str, str] | None = None
    ) -> None:
        message = err.message
        if self.echo_auth:
            message += f" ({self.echoed_auth(req)})"
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
        self.send(req, err.status, json.dumps(payload).encode(), headers)


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
