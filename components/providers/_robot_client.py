"""The Hetzner Robot webservice (https://robot-ws.your-server.de), only the parts we manage.

Robot differs from the other vendors in ways that shape this client:

* HTTP Basic auth with a *webservice user*; three failed logins lock the caller's IP for ten
  minutes. A 401 is never retried, and after one the client (and every other client in this
  process with the same credentials) refuses to send anything more: the next resource of the
  same run must not spend the second and third failed login. Until a login has worked once,
  requests with the same credentials go out one at a time, so parallel resources cannot
  spend three failed logins at once either.
* Bodies are ``application/x-www-form-urlencoded``, arrays as ``key[]=`` and nested
  structures as ``rules[input][0][name]=`` (``encode_form``); answers are JSON.
* Errors are ``{"error": {"status", "code", "message"[, "missing", "invalid"]}}``; the rate
  limit is **HTTP 403** ``RATE_LIMIT_EXCEEDED`` (retryable, with backoff), maintenance 503.
* Writes we use are idempotent: ``POST /rdns/{ip}`` is an upsert and ``POST /firewall/{n}``
  replaces the whole rule set, so every call may be retried. ``POST``/``DELETE
  /vswitch/{id}/server`` are only sent after a read showed the server out of (in) the vSwitch,
  and Robot refuses a second one while the first is ``in process`` (``VSWITCH_IN_PROCESS``).
* vSwitch membership is asynchronous: ``GET /vswitch/{id}`` (unwrapped, unlike the other
  answers) lists each server with ``status`` ``ready``, ``in process`` or ``failed``.

There are deliberately no methods to order, cancel, reset or rescue a server.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from components.providers._http import (
    PermanentApiError,
    RetryableApiError,
    RetryPolicy,
    TokenClient,
    VendorClient,
    describe_request,
    excerpt,
)

SYSTEM = "robot"
DEFAULT_URL = "https://robot-ws.your-server.de"
FORM = "application/x-www-form-urlencoded"
RULE_KEYS = (
    "name",
    "ip_version",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "protocol",
    "tcp_flags",
    "action",
)
# Robot codes after which the same call may later succeed.
_RETRYABLE_CODES = frozenset({"RATE_LIMIT_EXCEEDED", "FIREWALL_IN_PROCESS", "VSWITCH_IN_PROCESS"})

# Credentials (as a hash) Robot refused in this process, and those it accepted once.
_REFUSED: set[str] = set()
_VERIFIED: set[str] = set()
_FIRST_LOGIN = threading.Lock()


class RobotError(PermanentApiError):
    """Robot refused the request; ``code`` is its error code (``RDNS_NOT_FOUND``, ...)."""

    def __init__(
        self, message: str, *, code: str, status: int | None, secrets: Sequence[str] = ()
    ) -> None:
        super().__init__(SYSTEM, message, status=status, secrets=secrets)
        self.code = code


def encode_form(data: Mapping[str, Any]) -> str:
    """``data`` as Robot's form encoding; None values are left out, booleans are true/false."""
    return urlencode(list(_flatten("", data)), quote_via=quote)


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{prefix}[{key}]" if prefix else str(key), item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, Mapping | list | tuple):
                yield from _flatten(f"{prefix}[{index}]", item)
            elif item is not None:
                yield from _flatten(f"{prefix}[]", item)
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    elif value is not None:
        yield prefix, str(value)


@dataclass(frozen=True)
class _Form:
    """An encoded form body travelling through ``VendorClient.request``'s ``json`` slot."""

    encoded: str


class _RobotHttp(VendorClient):
    """``VendorClient`` speaking Robot: form bodies, Robot's error shape, the 401 latch."""

    def __init__(self, url: str, user: str, password: str, **kwargs: Any) -> None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        super().__init__(
            SYSTEM,
            url,
            auth=httpx.BasicAuth(user, password),
            secrets=(password, basic),
            **kwargs,
        )
        self._login = hashlib.sha256(f"{url}\0{user}\0{password}".encode()).hexdigest()

    def send(self, method: str, path: str, form: Mapping[str, Any] | None = None) -> Any:
        """One call; the decoded JSON answer (None for an empty body)."""
        body = _Form(encode_form(form)) if form is not None else None
        response = self.request(method, path, json=body, idempotent=True)
        if not response.content.strip():
            return None
        return self.json_value(response, f"{method} {path}")

    def _send_once(
        self, method: str, url: str, json: Any, headers: Mapping[str, str] | None
    ) -> httpx.Response:
        if self._login in _REFUSED:
            raise self._refused()
        if self._login in _VERIFIED:
            return self._exchange(method, url, json)
        with _FIRST_LOGIN:  # one request at a time until the credentials have worked once
            if self._login in _REFUSED:
                raise self._refused()
            response = self._exchange(method, url, json)
            _VERIFIED.add(self._login)
            return response

    def _exchange(self, method: str, url: str, body: Any) -> httpx.Response:
        if body is not None and not isinstance(body, _Form):
            raise TypeError("Robot takes form bodies only")
        where = describe_request(method, url)
        content = body.encoded.encode() if body is not None else None
        headers = {"Content-Type": FORM} if body is not None else None
        response = self._transport(method, url, where, content=content, headers=headers)
        if response.is_success:
            return response
        raise self._error(response, where)

    def _error(self, response: httpx.Response, where: str) -> Exception:
        status = response.status_code
        error: dict[str, Any] = {}
        try:
            data = response.json()
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                error = data["error"]
        except ValueError:
            pass
        code = str(error.get("code") or "")
        text = f"{status} {code or response.reason_phrase}: {where}: " + excerpt(
            str(error.get("message") or response.text), self.secrets
        )
        for key in ("missing", "invalid"):
            if error.get(key):
                text += f" ({key}: {', '.join(str(item) for item in error[key])})"
        if status == 401:
            _REFUSED.add(self._login)
            _VERIFIED.discard(self._login)
            return RobotError(
                f"{text}; login refused, not retried (three failed logins lock this IP for "
                "10 minutes): check robot:user and robot:password",
                code=code or "UNAUTHORIZED",
                status=status,
                secrets=self.secrets,
            )
        if code in _RETRYABLE_CODES or status in (408, 429) or status >= 500:
            return RetryableApiError(SYSTEM, text, status=status, secrets=self.secrets)
        return RobotError(text, code=code, status=status, secrets=self.secrets)

    def _refused(self) -> RobotError:
        return RobotError(
            "not sent: Robot refused these credentials earlier in this run (three failed "
            "logins lock this IP for 10 minutes); check robot:user and robot:password",
            code="UNAUTHORIZED",
            status=None,
            secrets=self.secrets,
        )


class RobotClient(TokenClient):
    """Typed client for the Robot calls we manage: server (read only), rDNS, firewall and
    vSwitch membership (never a vSwitch itself: created and ended by a person)."""

    system = SYSTEM

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Not TokenClient.__init__: that one sends a bearer token.
        self._robot = _RobotHttp(
            url,
            user,
            password,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            retry=retry,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        self._http = self._robot  # closed by TokenClient.close

    # --- server (read only) --------------------------------------------------------------

    def get_server(self, server_number: int) -> dict[str, Any] | None:
        """The server's data, or None if this account has no such server."""
        try:
            data = self._robot.send("GET", f"/server/{int(server_number)}")
        except RobotError as err:
            if err.code == "SERVER_NOT_FOUND":
                return None
            raise
        return self._unwrap(data, "server")

    # --- reverse DNS ---------------------------------------------------------------------

    def get_rdns(self, ip: str) -> str | None:
        """The PTR of ``ip``, or None if it has none (an IP not ours stays an error)."""
        try:
            data = self._robot.send("GET", f"/rdns/{quote(ip, safe=':.')}")
        except RobotError as err:
            if err.code == "RDNS_NOT_FOUND":
                return None
            raise
        return str(self._unwrap(data, "rdns").get("ptr") or "") or None

    def set_rdns(self, ip: str, ptr: str) -> str:
        """Create or update the PTR of ``ip`` (``POST`` is Robot's upsert)."""
        data = self._robot.send("POST", f"/rdns/{quote(ip, safe=':.')}", {"ptr": ptr})
        return str(self._unwrap(data, "rdns").get("ptr") or "")

    def delete_rdns(self, ip: str) -> bool:
        """Remove the PTR of ``ip``; False when there was none."""
        try:
            self._robot.send("DELETE", f"/rdns/{quote(ip, safe=':.')}")
        except RobotError as err:
            if err.code == "RDNS_NOT_FOUND":
                return False
            raise
        return True

    # --- firewall ------------------------------------------------------------------------

    def get_firewall(self, server_number: int) -> dict[str, Any]:
        data = self._robot.send("GET", f"/firewall/{int(server_number)}")
        return self._unwrap(data, "firewall")

    def set_firewall(
        self,
        server_number: int,
        *,
        input_rules: Sequence[Mapping[str, Any]],
        output_rules: Sequence[Mapping[str, Any]],
        filter_ipv6: bool,
        whitelist_hos: bool,
    ) -> dict[str, Any]:
        """Replace the whole firewall; Robot answers ``status: in process`` and applies it
        in the background (poll ``get_firewall``)."""
        form = {
            "status": "active",
            "filter_ipv6": filter_ipv6,
            "whitelist_hos": whitelist_hos,
            "rules": {
                "input": [_wire_rule(rule) for rule in input_rules],
                "output": [_wire_rule(rule) for rule in output_rules],
            },
        }
        data = self._robot.send("POST", f"/firewall/{int(server_number)}", form)
        return self._unwrap(data, "firewall")

    # --- vSwitch membership ---------------------------------------------------------------

    def get_vswitch(self, vswitch_id: int) -> dict[str, Any] | None:
        """The vSwitch with its ``server`` list, or None if this account has no such vSwitch."""
        try:
            data = self._robot.send("GET", f"/vswitch/{int(vswitch_id)}")
        except RobotError as err:
            if err.code in ("NOT_FOUND", "VSWITCH_NOT_FOUND"):
                return None
            raise
        return self._http.as_object(data, "vswitch")

    def add_vswitch_server(self, vswitch_id: int, server_number: int) -> None:
        """Ask Robot to attach the server; it shows ``in process`` until it is ``ready``."""
        form = {"server": [int(server_number)]}
        self._robot.send("POST", f"/vswitch/{int(vswitch_id)}/server", form)

    def remove_vswitch_server(self, vswitch_id: int, server_number: int) -> None:
        """Ask Robot to detach the server; it shows ``in process`` until it is gone."""
        form = {"server": [int(server_number)]}
        self._robot.send("DELETE", f"/vswitch/{int(vswitch_id)}/server", form)

    def _unwrap(self, data: Any, key: str) -> dict[str, Any]:
        return self._http.as_object(self._http.as_object(data, key).get(key), key)


def _wire_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {key: rule[key] for key in RULE_KEYS if rule.get(key) is not None}


def normalize_rule(rule: Mapping[str, Any]) -> dict[str, str | None]:
    """A rule with every Robot rule key, unset ones None, the way ``GET /firewall`` shows it."""
    return {key: None if rule.get(key) in (None, "") else str(rule[key]) for key in RULE_KEYS}
