"""A fake Hetzner Robot webservice, served for real on 127.0.0.1.

Speaks the documented protocol for the calls the stack uses: ``GET /server/{n}``, ``GET``/
``POST``/``DELETE /rdns/{ip}``, ``GET``/``POST /firewall/{n}``, ``GET /vswitch/{id}`` and
``POST``/``DELETE /vswitch/{id}/server``. HTTP Basic auth of a
webservice user; form bodies (``application/x-www-form-urlencoded``, ``key[]`` and
``rules[input][0][name]``) parsed strictly: unknown, duplicate, missing or malformed fields
are ``400 INVALID_INPUT`` with ``missing``/``invalid``; errors as
``{"error": {"status", "code", "message"}}``.

Modelled behaviour:

* Login lockout: the third failed login in a row locks the caller out for ``lockout_seconds``;
  during the lockout every request is refused with 401, the right credentials included.
* Rate limit: at most ``rate_limit`` requests per endpoint (first path segment) per window of
  ``rate_interval`` seconds on ``clock``; more are ``403 RATE_LIMIT_EXCEEDED``.
* Asynchronous firewall: a ``POST`` answers ``status: in process``; the next ``apply_after``
  ``GET``\\ s still show ``in process``, the one after shows the new status (``None``: never
  done). A ``POST`` while in process is ``409 FIREWALL_IN_PROCESS``; more than 10 rules per
  direction ``409 FIREWALL_RULE_LIMIT_EXCEEDED``.
* Asynchronous vSwitch membership: ``POST /vswitch/{id}/server`` (``server[]=<number or
  ip>``, 201, empty body) lists the server ``in process``; after ``vswitch_apply_after``
  ``GET``\\ s of the vSwitch it is ``ready`` (``failed`` for numbers in ``vswitch_failing``;
  ``None``: never done). ``DELETE`` likewise shows ``in process`` until the server is gone.
  A write while any server of the vSwitch is in process is ``409 VSWITCH_IN_PROCESS``; an
  unknown server ``404 SERVER_NOT_FOUND``; an unknown vSwitch ``404 NOT_FOUND``; a cancelled
  one ``409 VSWITCH_NOT_AVAILABLE``; a sixth vSwitch of one server ``409
  VSWITCH_PER_SERVER_LIMIT_REACHED``. Adding a server that is already in the vSwitch is
  ``409 CONFLICT`` here (Robot's exact answer is not documented).

There are no ordering, cancellation, reset or rescue endpoints: they answer 404.

Test hooks, from ``http_fake.LoopbackFake``: ``fail_next``, ``slow_next``, ``echo_auth``,
``errors``; of this fake: ``servers``, ``rdns``, ``firewalls`` and ``vswitches`` (``add_vswitch``)
for out-of-band changes,
``calls`` (``"GET /rdns"``, ...), ``writes``, ``failed_logins``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote

from tests.fakes.http_fake import LoopbackFake

DEFAULT_USER = "#ws+dezkyTest"
DEFAULT_PASSWORD = "robot-test-password-do-not-leak"  # noqa: S105 - a test value
SERVER_NUMBER = 2345678
SERVER_IP = "203.0.113.10"
SERVER_IPV6_NET = "2001:db8:1:2::"
RULE_FIELDS = ("ip_version", "name", "dst_ip", "src_ip", "dst_port", "src_port", "protocol",
               "tcp_flags", "action")  # fmt: skip
_RULE_KEY = re.compile(r"^rules\[(input|output)\]\[(\d+)\]\[([a-z_]+)\]$")
_CODES = {401: "UNAUTHORIZED", 403: "RATE_LIMIT_EXCEEDED", 404: "NOT_FOUND",
          409: "CONFLICT", 500: "INTERNAL_ERROR", 503: "MAINTENANCE"}  # fmt: skip


class InvalidInput(Exception):
    def __init__(self, missing: list[str] | None = None, invalid: list[str] | None = None):
        super().__init__("invalid input")
        self.missing = missing or []
        self.invalid = invalid or []


class FakeRobot(LoopbackFake):
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url``, ``user``, ``password``."""

    methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST", "DELETE"})

    def __init__(
        self,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(password)
        self.user = user
        self.password = password
        self.clock = clock
        self.failed_logins = 0
        self.lockout_seconds = 600.0
        self.locked_until: float | None = None
        self.rate_limit: int | None = None
        self.rate_interval = 3600.0
        self._window: dict[str, tuple[int, int]] = {}
        self.apply_after: int | None = 2
        self._pending: dict[int, int | None] = {}
        self.servers: dict[int, dict[str, Any]] = {}
        self.rdns: dict[str, str] = {}
        self.firewalls: dict[int, dict[str, Any]] = {}
        self.vswitches: dict[int, dict[str, Any]] = {}
        self.vswitch_apply_after: int | None = 2
        self.vswitch_failing: set[int] = set()
        # (vswitch id, server number) -> (GETs still "in process", "add" | "remove")
        self._vswitch_pending: dict[tuple[int, int], tuple[int | None, str]] = {}
        self.add_server(SERVER_NUMBER, SERVER_IP, SERVER_IPV6_NET)

    @property
    def writes(self) -> int:
        """POST and DELETE requests that reached an endpoint."""
        return sum(n for name, n in self.calls.items() if not name.startswith("GET "))

    def add_server(self, number: int, ip: str, ipv6_net: str) -> None:
        self.servers[number] = {
            "server_ip": ip, "server_ipv6_net": ipv6_net, "server_number": number,
            "server_name": f"server{number}", "product": "AX41-NVMe", "dc": "FSN1-DC14",
            "traffic": "unlimited", "status": "ready", "cancelled": False,
            "paid_until": "2030-12-31", "ip": [ip], "subnet": [{"ip": ipv6_net, "mask": "64"}],
            "reset": True, "rescue": True, "vnc": True, "windows": False, "plesk": False,
            "cpanel": False, "wol": True, "hot_swap": False, "linked_storagebox": None,
        }  # fmt: skip
        self.firewalls[number] = {
            "server_ip": ip, "server_number": number, "status": "disabled",
            "filter_ipv6": False, "whitelist_hos": True, "port": "main",
            "rules": {"input": [], "output": []},
        }  # fmt: skip

    def add_vswitch(self, vswitch_id: int, vlan: int, name: str) -> dict[str, Any]:
        self.vswitches[vswitch_id] = {
            "id": vswitch_id, "name": name, "vlan": vlan, "cancelled": False,
            "server": [], "subnet": [], "cloud_network": [],
        }  # fmt: skip
        return self.vswitches[vswitch_id]

    # --- request handling ----------------------------------------------------------------

    def admit(self, req: BaseHTTPRequestHandler) -> bool:
        """Basic auth with Robot's lockout after 3 failed logins, then the rate limit."""
        with self._lock:
            now = self.clock()
            if self.locked_until is not None and now < self.locked_until:
                refused = True
            elif req.headers.get("Authorization") != self._expected_auth():
                self.failed_logins += 1
                if self.failed_logins >= 3:
                    self.locked_until = now + self.lockout_seconds
                refused = True
            else:
                self.failed_logins = 0
                refused = False
            limited = not refused and self._over_limit(req.path, now)
        if refused:
            self.unauthorized(req)
            return False
        if limited:
            extra = {"max_request": self.rate_limit, "interval": self.rate_interval}
            self._error(req, 403, "RATE_LIMIT_EXCEEDED", "rate limit exceeded", **extra)
            return False
        return True

    def _expected_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def _over_limit(self, path: str, now: float) -> bool:
        if self.rate_limit is None:
            return False
        endpoint = path.split("?")[0].strip("/").split("/")[0]
        window = int(now // self.rate_interval)
        start, count = self._window.get(endpoint, (window, 0))
        count = count + 1 if start == window else 1
        self._window[endpoint] = (window, count)
        return count > self.rate_limit

    def refuse(self, req: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        code = _CODES.get(status, "INTERNAL_ERROR")
        self._error(req, status, code, "Injected failure", headers=headers)

    def unauthorized(self, req: BaseHTTPRequestHandler) -> None:
        self._error(req, 401, "UNAUTHORIZED", "Unauthorized",
                    headers={"WWW-Authenticate": 'Basic realm="Webservice"'})  # fmt: skip

    def answer(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        parts = [unquote(p) for p in req.path.split("?")[0].strip("/").split("/")]
        key = f"{method} /{parts[0]}"
        try:
            if parts[0] == "vswitch" and len(parts) in (2, 3):
                return self._vswitch_request(req, method, parts, body)
            form = self._form(req, body) if method == "POST" else {}
            with self._lock:
                if len(parts) == 2 and parts[0] == "server" and method == "GET":
                    self.calls[key] += 1
                    return self._server_info(req, parts[1])
                if len(parts) == 2 and parts[0] == "rdns":
                    self.calls[key] += 1
                    return self._rdns(req, method, parts[1], form)
                if len(parts) == 2 and parts[0] == "firewall" and method in ("GET", "POST"):
                    self.calls[key] += 1
                    return self._firewall(req, method, parts[1], form)
        except InvalidInput as err:
            extra = {"missing": err.missing or None, "invalid": err.invalid or None}
            return self._error(req, 400, "INVALID_INPUT", "invalid input", **extra)
        return self._error(req, 404, "NOT_FOUND", "Not found")

    # --- endpoints -----------------------------------------------------------------------

    def _server_info(self, req: BaseHTTPRequestHandler, number: str) -> None:
        server = self.servers.get(int(number)) if number.isdigit() else None
        if server is None:
            return self._error(req, 404, "SERVER_NOT_FOUND", "Server not found")
        return self._send(req, 200, {"server": server})

    def _rdns(
        self, req: BaseHTTPRequestHandler, method: str, ip: str, form: dict[str, str]
    ) -> None:
        if not self._owns(ip):
            return self._error(req, 404, "IP_NOT_FOUND", "The IP address was not found")
        if method == "GET":
            if ip not in self.rdns:
                return self._error(req, 404, "RDNS_NOT_FOUND", "The rDNS entry was not found")
            return self._send(req, 200, {"rdns": {"ip": ip, "ptr": self.rdns[ip]}})
        if method == "POST":
            _only(form, required=("ptr",))
            status = 200 if ip in self.rdns else 201
            self.rdns[ip] = form["ptr"]
            return self._send(req, status, {"rdns": {"ip": ip, "ptr": form["ptr"]}})
        if ip not in self.rdns:  # DELETE
            return self._error(req, 404, "RDNS_NOT_FOUND", "The rDNS entry was not found")
        del self.rdns[ip]
        return self.send(req, 200, b"")

    def _firewall(
        self, req: BaseHTTPRequestHandler, method: str, number: str, form: dict[str, str]
    ) -> None:
        fw = self.firewalls.get(int(number)) if number.isdigit() else None
        if fw is None:
            return self._error(req, 404, "SERVER_NOT_FOUND", "Server not found")
        if method == "GET":
            if fw["status"] == "in process":
                remaining = self._pending.get(fw["server_number"])
                if remaining is not None and remaining <= 0:
                    fw["status"] = fw.pop("_target")
                elif remaining is not None:
                    self._pending[fw["server_number"]] = remaining - 1
            return self._send(req, 200, {"firewall": _public(fw)})
        if fw["status"] == "in process":
            return self._error(req, 409, "FIREWALL_IN_PROCESS", "The firewall is being updated")
        config = _firewall_form(form)
        if any(len(config["rules"][d]) > 10 for d in ("input", "output")):
            return self._error(req, 409, "FIREWALL_RULE_LIMIT_EXCEEDED", "Too many rules")
        fw.update(config)
        fw["_target"] = fw["status"]
        fw["status"] = "in process"
        self._pending[fw["server_number"]] = self.apply_after
        return self._send(req, 200, {"firewall": _public(fw)})

    def _vswitch_request(
        self, req: BaseHTTPRequestHandler, method: str, parts: list[str], body: bytes
    ) -> None:
        vswitch = self.vswitches.get(int(parts[1])) if parts[1].isdigit() else None
        if len(parts) == 2 and method == "GET":
            with self._lock:
                self.calls["GET /vswitch"] += 1
                if vswitch is None:
                    return self._error(req, 404, "NOT_FOUND", "vSwitch not found")
                self._advance(vswitch)
                return self._send(req, 200, _public(vswitch))
        if len(parts) != 3 or parts[2] != "server" or method not in ("POST", "DELETE"):
            return self._error(req, 404, "NOT_FOUND", "Not found")
        pairs = self._form_pairs(req, body)
        invalid = sorted({k for k, _ in pairs if k != "server[]"})
        if invalid or not pairs:
            raise InvalidInput(missing=[] if pairs else ["server[]"], invalid=invalid)
        with self._lock:
            self.calls[f"{method} /vswitch/server"] += 1
            if vswitch is None:
                return self._error(req, 404, "NOT_FOUND", "vSwitch not found")
            if vswitch["cancelled"]:
                return self._error(req, 409, "VSWITCH_NOT_AVAILABLE", "vSwitch is cancelled")
            numbers = [self._server_number(value) for _, value in pairs]
            if None in numbers:
                return self._error(req, 404, "SERVER_NOT_FOUND", "Server not found")
            if any(s["status"] == "in process" for s in vswitch["server"]):
                return self._error(req, 409, "VSWITCH_IN_PROCESS", "vSwitch update running")
            members = {s["server_number"]: s for s in vswitch["server"]}
            if method == "DELETE":
                if any(n not in members for n in numbers):
                    return self._error(req, 404, "SERVER_NOT_FOUND", "Server not in vSwitch")
                for number in numbers:
                    self._start(vswitch, members[number], "remove")
                return self.send(req, 200, b"")
            if any(n in members for n in numbers):
                return self._error(req, 409, "CONFLICT", "Server already in vSwitch")
            for number in numbers:
                assert number is not None
                joined = [v for v in self.vswitches.values() if number in _member_numbers(v)]
                if len(joined) >= 5:
                    return self._error(
                        req, 409, "VSWITCH_PER_SERVER_LIMIT_REACHED", "Too many vSwitches"
                    )
                server = self.servers[number]
                entry = {"server_ip": server["server_ip"],
                         "server_ipv6_net": server["server_ipv6_net"],
                         "server_number": number, "status": "in process"}  # fmt: skip
                vswitch["server"].append(entry)
                self._start(vswitch, entry, "add")
            return self.send(req, 201, b"")

    def _server_number(self, value: str) -> int | None:
        for number, server in self.servers.items():
            if value in (str(number), server["server_ip"]):
                return number
        return None

    def _start(self, vswitch: dict[str, Any], entry: dict[str, Any], action: str) -> None:
        entry["status"] = "in process"
        key = (vswitch["id"], entry["server_number"])
        self._vswitch_pending[key] = (self.vswitch_apply_after, action)

    def _advance(self, vswitch: dict[str, Any]) -> None:
        """One GET of the vSwitch: memberships in process move one step towards done."""
        for entry in list(vswitch["server"]):
            key = (vswitch["id"], entry["server_number"])
            if entry["status"] != "in process" or key not in self._vswitch_pending:
                continue
            remaining, action = self._vswitch_pending[key]
            if remaining is None:
                continue
            if remaining > 0:
                self._vswitch_pending[key] = (remaining - 1, action)
                continue
            del self._vswitch_pending[key]
            if action == "remove":
                vswitch["server"].remove(entry)
            else:
                failing = entry["server_number"] in self.vswitch_failing
                entry["status"] = "failed" if failing else "ready"

    def _owns(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        for server in self.servers.values():
            if ip in server["ip"]:
                return True
            for subnet in server["subnet"]:
                net = ipaddress.ip_network(f"{subnet['ip']}/{subnet['mask']}")
                if address.version == net.version and address in net:
                    return True
        return False

    # --- wire format ---------------------------------------------------------------------

    def _form_pairs(self, req: BaseHTTPRequestHandler, body: bytes) -> list[tuple[str, str]]:
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            raise InvalidInput(invalid=[f"Content-Type {ctype or '(none)'}"])
        try:
            return parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            if not body:
                return []
            raise InvalidInput(invalid=["body"]) from None

    def _form(self, req: BaseHTTPRequestHandler, body: bytes) -> dict[str, str]:
        form: dict[str, str] = {}
        for key, value in self._form_pairs(req, body):
            if key in form:
                raise InvalidInput(invalid=[key])
            form[key] = value
        return form

    def _error(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if self.echo_auth:
            message += f" ({self.echoed_auth(req)})"
        error: dict[str, Any] = {"status": status, "code": code, "message": message}
        error.update({k: v for k, v in extra.items() if v is not None})
        self._send(req, status, {"error": error}, headers)

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send(req, status, json.dumps(payload).encode(), headers)


def _only(form: dict[str, str], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if not form.get(k)]
    invalid = sorted(k for k in form if k not in required + optional)
    if missing or invalid:
        raise InvalidInput(missing, invalid)


def _boolean(form: dict[str, str], key: str) -> bool:
    if form[key] not in ("true", "false"):
        raise InvalidInput(invalid=[key])
    return form[key] == "true"


def _firewall_form(form: dict[str, str]) -> dict[str, Any]:
    """The posted firewall configuration; every key known, every value well-formed."""
    flat = {k: v for k, v in form.items() if not k.startswith("rules[")}
    _only(flat, required=("status", "filter_ipv6", "whitelist_hos"))
    if form["status"] not in ("active", "disabled"):
        raise InvalidInput(invalid=["status"])
    rules: dict[str, dict[int, dict[str, str]]] = {"input": {}, "output": {}}
    for key, value in form.items():
        if not key.startswith("rules["):
            continue
        match = _RULE_KEY.match(key)
        if match is None or match.group(3) not in RULE_FIELDS or value == "":
            raise InvalidInput(invalid=[key])
        rules[match.group(1)].setdefault(int(match.group(2)), {})[match.group(3)] = value
    listed: dict[str, list[dict[str, str | None]]] = {}
    for direction, by_index in rules.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise InvalidInput(invalid=[f"rules[{direction}]"])
        listed[direction] = []
        for index in range(len(by_index)):
            rule = by_index[index]
            where = f"rules[{direction}][{index}]"
            if rule.get("action") not in ("accept", "discard"):
                raise InvalidInput(missing=[f"{where}[action]"])
            if "name" not in rule:
                raise InvalidInput(missing=[f"{where}[name]"])
            if rule.get("ip_version", "ipv4") not in ("ipv4", "ipv6"):
                raise InvalidInput(invalid=[f"{where}[ip_version]"])
            listed[direction].append({k: rule.get(k) for k in RULE_FIELDS})
    return {
        "status": form["status"],
        "filter_ipv6": _boolean(form, "filter_ipv6"),
        "whitelist_hos": _boolean(form, "whitelist_hos"),
        "rules": listed,
    }


def _member_numbers(vswitch: dict[str, Any]) -> set[int]:
    return {s["server_number"] for s in vswitch["server"]}


def _public(fw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fw.items() if not k.startswith("_")}
