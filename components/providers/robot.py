"""Hetzner Robot (dedicated servers) as Pulumi dynamic resources: reverse DNS and firewall
(vSwitch membership: ``vswitch``, on the same ``RobotProvider`` base).

``RobotClient`` speaks the Robot webservice (``_robot_client``); ``ReverseDnsProvider`` and
``FirewallProvider`` implement check/diff/create/read/update/delete on it; ``ReverseDns`` and
``Firewall`` are the typed resources. The server itself is ordered by a person and only
adopted by its number, and the vSwitch (its VLAN, its end) is made in Robot by a person too:
nothing here orders, cancels, resets or rescues a server, or creates or ends a vSwitch.

Credentials come only from the stack config ``robot:user`` and ``robot:password`` (secret) of
a Robot *webservice user*; ``robot:url`` overrides the endpoint (tests). They are never
pickled into state. Robot locks the caller's IP for 10 minutes after three failed logins, so
the client stops at the first 401 (see ``_robot_client``).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers._base import TokenProvider
from components.providers._http import (
    ApiError,
    PermanentApiError,
    RetryableApiError,
    RetryPolicy,
)
from components.providers._robot_client import (
    DEFAULT_URL,
    RULE_KEYS,
    SYSTEM,
    RobotClient,
    RobotError,
    encode_form,
    normalize_rule,
)
from components.providers.stalwart import fqdn_problem

__all__ = [
    "ALLOW_ALL_OUTPUT",
    "CONFIG_PASSWORD",
    "CONFIG_URL",
    "CONFIG_USER",
    "DEFAULT_URL",
    "MAX_RULES",
    "ApiError",
    "Firewall",
    "FirewallProvider",
    "PermanentApiError",
    "RetryableApiError",
    "ReverseDns",
    "ReverseDnsProvider",
    "RobotClient",
    "RobotError",
    "RobotProvider",
    "encode_form",
    "normalize_rule",
    "rule_problem",
]

CONFIG_URL, CONFIG_USER, CONFIG_PASSWORD = f"{SYSTEM}:url", f"{SYSTEM}:user", f"{SYSTEM}:password"
MAX_RULES = 10
"""Robot takes at most 10 rules per direction."""
ALLOW_ALL_OUTPUT: tuple[dict[str, str], ...] = ({"name": "allow all", "action": "accept"},)

_NAME_RE = re.compile(r"^[A-Za-z0-9 ._-]{1,64}$")
_PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_FLAG = "(?:syn|ack|fin|rst|psh|urg)"
_FLAGS_RE = re.compile(rf"^{_FLAG}(?:[|&]{_FLAG})*$")
_PROTOCOLS = frozenset({"tcp", "udp", "gre", "icmp", "ipip", "ah", "esp"})
_SETTLE_STATES = frozenset({"active", "disabled"})


# --- checks --------------------------------------------------------------------------------


def ip_problem(value: object) -> str | None:
    """Why ``value`` is not one IP address in canonical form, or None if it is one."""
    try:
        canonical = str(ipaddress.ip_address(str(value)))
    except ValueError:
        return "must be one IPv4 or IPv6 address"
    if value != canonical:
        return f"must be written canonically: {canonical!r}"
    return None


def server_number_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return "must be the Robot server number (a positive integer)"
    return None if value > 0 else "must be the Robot server number (a positive integer)"


def rule_problem(rule: object) -> str | None:
    """Why ``rule`` is not a Robot firewall rule we can send, or None if it is one."""
    if not isinstance(rule, Mapping):
        return "must be a mapping of rule fields"
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        return f"unknown fields {unknown}; a rule has {list(RULE_KEYS)}"
    r = normalize_rule(rule)
    name = r["name"] or ""
    if not _NAME_RE.match(name):
        return "name: 1-64 of letters, digits, space, '.', '_', '-'"
    if r["action"] not in ("accept", "discard"):
        return f"{name}: action must be 'accept' or 'discard'"
    if r["ip_version"] not in (None, "ipv4", "ipv6"):
        return f"{name}: ip_version must be 'ipv4', 'ipv6' or unset (both)"
    if r["protocol"] is not None and r["protocol"] not in _PROTOCOLS:
        return f"{name}: protocol must be one of {sorted(_PROTOCOLS)} or unset"
    for key in ("src_ip", "dst_ip"):
        if r[key] is not None:
            try:
                net = ipaddress.ip_network(str(r[key]), strict=True)
            except ValueError:
                return f"{name}: {key} must be an address or CIDR network"
            if r["ip_version"] != f"ipv{net.version}":
                return f"{name}: {key} {r[key]} needs ip_version 'ipv{net.version}'"
    for key in ("src_port", "dst_port"):
        if r[key] is not None:
            match = _PORT_RE.match(r[key] or "")
            ports = [int(p) for p in match.groups() if p] if match else []
            if not ports or ports[-1] > 65535 or ports[0] > ports[-1]:
                return f"{name}: {key} must be a port or a range such as 32768-65535"
            if r["protocol"] not in ("tcp", "udp"):
                return f"{name}: {key} needs protocol 'tcp' or 'udp'"
    if r["tcp_flags"] is not None and (
        r["protocol"] != "tcp" or not _FLAGS_RE.match(r["tcp_flags"] or "")
    ):
        return f"{name}: tcp_flags (such as 'ack' or 'syn|fin') need protocol 'tcp'"
    return None


def rules_problem(value: object) -> str | None:
    if not isinstance(value, list | tuple):
        return "must be a list of rules"
    if len(value) > MAX_RULES:
        return f"Robot takes at most {MAX_RULES} rules per direction, got {len(value)}"
    problems = [p for p in (rule_problem(rule) for rule in value) if p]
    return "; ".join(problems) or None


def _bool_problem(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


# --- providers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Login:
    url: str
    user: str
    password: str = field(repr=False)


class RobotProvider(TokenProvider[RobotClient]):
    """A ``TokenProvider`` that logs in with a webservice user instead of a bearer token."""

    system = SYSTEM
    product = "Hetzner Robot"
    client_type = RobotClient

    def __init__(self, *, http_timeout: float = 10.0, retry: RetryPolicy | None = None) -> None:
        super().__init__(http_timeout=http_timeout, retry=retry)
        self._login: _Login | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_login"] = None  # never pickle the webservice password into state
        return state

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        url = req.config.get(CONFIG_URL) or DEFAULT_URL
        user, password = req.config.get(CONFIG_USER), req.config.get(CONFIG_PASSWORD)
        if isinstance(user, str) and user and isinstance(password, str) and password:
            self._login = _Login(str(url), user, password)

    def _client(self) -> RobotClient:
        if self._login is None:
            raise PermanentApiError(
                SYSTEM,
                f"stack config {CONFIG_USER} and {CONFIG_PASSWORD} (secret) of a Robot "
                f"webservice user are required for the {self.product} provider",
            )
        login = self._login
        return RobotClient(
            login.url, login.user, login.password, timeout=self.http_timeout, retry=self.retry
        )


class ReverseDnsProvider(RobotProvider):
    """The PTR record of one IP of a dedicated server (``/rdns/{ip}``)."""

    inputs = ("ip", "ptr")
    checks = (("ip", ip_problem), ("ptr", fqdn_problem))
    replace_on = frozenset({"ip"})

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        ip, ptr = str(props["ip"]), str(props["ptr"])
        with self._client() as client:
            self._ensure(client, ip, ptr)
        return dynamic.CreateResult(ip, {"ip": ip, "ptr": ptr})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            ptr = client.get_rdns(id_)
        return self._read_result(id_, None if ptr is None else {"ip": id_, "ptr": ptr})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        ptr = str(news["ptr"])
        with self._client() as client:
            self._ensure(client, id_, ptr)
        return dynamic.UpdateResult({"ip": id_, "ptr": ptr})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        with self._client() as client:
            client.delete_rdns(id_)  # already gone: still a success

    @staticmethod
    def _ensure(client: RobotClient, ip: str, ptr: str) -> None:
        """Adopt a matching PTR without a write; otherwise upsert it."""
        if client.get_rdns(ip) != ptr:
            client.set_rdns(ip, ptr)


class FirewallProvider(RobotProvider):
    """The Robot firewall of one server (``/firewall/{server-number}``), replaced as a whole.

    Robot applies a new rule set in the background (``status: in process``, 20-30 s), so
    create and update poll until it is ``active``, up to ``apply_timeout``.
    """

    inputs = ("server_number", "rules", "output_rules", "filter_ipv6", "whitelist_hos")

    def __init__(
        self,
        *,
        apply_timeout: float = 300.0,
        poll_interval: float = 5.0,
        http_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(http_timeout=http_timeout, retry=retry)
        self.apply_timeout = apply_timeout
        self.poll_interval = poll_interval

    checks = (
        ("server_number", server_number_problem),
        ("rules", rules_problem),
        ("output_rules", rules_problem),
        ("filter_ipv6", _bool_problem),
        ("whitelist_hos", _bool_problem),
    )
    replace_on = frozenset({"server_number"})

    def _changed(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        # Compared normalised: the engine drops None values inside nested rule dicts.
        olds_n, news_n = _desired(olds), _desired(news)
        changed = [k for k in self.inputs if news.get(k) == UNKNOWN or olds_n[k] != news_n[k]]
        if olds.get("status") not in (None, "active"):
            changed.append("status")  # disabled (or left half-applied) out of band
        return changed

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        desired = _desired(props)
        number = int(desired["server_number"])
        with self._client() as client:
            if client.get_server(number) is None:
                raise PermanentApiError(
                    SYSTEM,
                    f"server {number} is not in this Robot account; a person orders the server, "
                    "the stack only adopts it by number",
                )
            outs = self._reconcile(client, desired)
        return dynamic.CreateResult(str(number), outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            try:
                live = client.get_firewall(int(id_))
            except RobotError as err:
                if err.code not in ("SERVER_NOT_FOUND", "FIREWALL_NOT_AVAILABLE"):
                    raise
                return self._read_result(id_, None)
        return self._read_result(id_, _outs(live, int(id_)))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        with self._client() as client:
            return dynamic.UpdateResult(self._reconcile(client, _desired(news)))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        # Deliberately leaves the firewall as it is: deleting (or disabling) it in Robot would
        # open every port of the server to the internet. Removing the resource from the stack
        # only stops managing it; a person changes the firewall in Robot if that is wanted.
        return None

    # --- helpers -------------------------------------------------------------------------

    def _reconcile(self, client: RobotClient, desired: dict[str, Any]) -> dict[str, Any]:
        """Make the live firewall the desired one; write nothing if it already is."""
        number = int(desired["server_number"])
        outs = _outs(self._settled(client, number), number)
        if outs["status"] == "active" and _desired(outs) == desired:
            return outs
        client.set_firewall(
            number,
            input_rules=desired["rules"],
            output_rules=desired["output_rules"],
            filter_ipv6=desired["filter_ipv6"],
            whitelist_hos=desired["whitelist_hos"],
        )
        outs = _outs(self._settled(client, number), number)
        if outs["status"] != "active" or _desired(outs) != desired:
            raise PermanentApiError(
                SYSTEM,
                f"firewall of server {number} ended {outs['status']!r} with other rules than "
                "were sent; check it in Robot",
            )
        return outs

    def _settled(self, client: RobotClient, number: int) -> dict[str, Any]:
        """The live firewall once Robot has finished applying it (not ``in process``)."""
        deadline = time.monotonic() + self.apply_timeout
        while True:
            live = client.get_firewall(number)
            if live.get("status") in _SETTLE_STATES:
                return live
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableApiError(
                    SYSTEM,
                    f"firewall of server {number} still {live.get('status')!r} after "
                    f"{self.apply_timeout:g}s; the next run waits again",
                )
            time.sleep(min(self.poll_interval, remaining))


def _rules(value: object) -> list[dict[str, str | None]]:
    if not isinstance(value, list | tuple):
        return []
    return [normalize_rule(rule) for rule in value if isinstance(rule, Mapping)]


def _desired(props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs in the shape the live firewall is compared in."""
    number = props.get("server_number")
    return {
        "server_number": int(number) if isinstance(number, int | float) else number,
        "rules": _rules(props.get("rules")),
        "output_rules": _rules(props.get("output_rules")),
        "filter_ipv6": props.get("filter_ipv6"),
        "whitelist_hos": props.get("whitelist_hos"),
    }


def _outs(live: Mapping[str, Any], number: int) -> dict[str, Any]:
    rules = live.get("rules")
    rules = rules if isinstance(rules, Mapping) else {}
    return {
        "server_number": number,
        "rules": _rules(rules.get("input")),
        "output_rules": _rules(rules.get("output")),
        "filter_ipv6": bool(live.get("filter_ipv6")),
        "whitelist_hos": bool(live.get("whitelist_hos")),
        "status": str(live.get("status") or ""),
        "server_ip": str(live.get("server_ip") or ""),
    }


# --- resources -----------------------------------------------------------------------------


class ReverseDns(dynamic.Resource, module="robot", name="ReverseDns"):
    """The PTR record of one IP of a dedicated server."""

    ip: pulumi.Output[str]
    ptr: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        ip: pulumi.Input[str],
        ptr: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        provider: ReverseDnsProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {"ip": ip, "ptr": ptr}
        super().__init__(provider or ReverseDnsProvider(), resource_name, props, opts)


class Firewall(dynamic.Resource, module="robot", name="Firewall"):
    """The Robot firewall of a dedicated server: the whole rule set, applied and verified.

    Rules are ``{name, ip_version, src_ip, dst_ip, src_port, dst_port, protocol, tcp_flags,
    action}`` (unset fields may be left out); Robot discards whatever no rule accepts.
    Removing the resource leaves the firewall in Robot as it is.
    """

    server_number: pulumi.Output[int]
    rules: pulumi.Output[list[dict[str, str | None]]]
    output_rules: pulumi.Output[list[dict[str, str | None]]]
    filter_ipv6: pulumi.Output[bool]
    whitelist_hos: pulumi.Output[bool]
    status: pulumi.Output[str]
    server_ip: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        server_number: pulumi.Input[int],
        rules: pulumi.Input[Sequence[Mapping[str, Any]]],
        output_rules: pulumi.Input[Sequence[Mapping[str, Any]]] | None = None,
        filter_ipv6: pulumi.Input[bool] = True,
        whitelist_hos: pulumi.Input[bool] = True,
        opts: pulumi.ResourceOptions | None = None,
        provider: FirewallProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "server_number": server_number,
            "rules": rules,
            "output_rules": (
                output_rules if output_rules is not None else [dict(r) for r in ALLOW_ALL_OUTPUT]
            ),
            "filter_ipv6": filter_ipv6,
            "whitelist_hos": whitelist_hos,
            "status": None,
            "server_ip": None,
        }
        super().__init__(provider or FirewallProvider(), resource_name, props, opts)
