"""The dedicated server (a Hetzner AX41), adopted by its Robot server number.

A person orders the server; the stack manages what Robot lets it manage: the reverse DNS of
its IPv4 and IPv6 address, the Robot firewall in front of its switch port and, when a vSwitch
is configured, the server's membership in it (the vSwitch itself is made in Robot).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.providers import robot, vswitch

SSH_PORT = "22"
KUBE_API_PORT = "6443"
WEB_PORTS = (("http", "80"), ("https", "443"))
MAIL_PORTS = (("smtp", "25"), ("smtps", "465"), ("submission", "587"), ("imaps", "993"))
EPHEMERAL_PORTS = "32768-65535"


@dataclass(frozen=True)
class DedicatedServerArgs:
    """Inputs of ``DedicatedServer``.

    ``ipv6`` is the address in the server's /64 that the hostname points to (its PTR is set);
    ``admin_networks`` are the CIDRs SSH and the Kubernetes API are reachable from;
    ``vswitch_id`` is the Robot vSwitch the server joins (None: none).
    """

    server_number: int
    ipv4: str
    ipv6: str
    hostname: str
    admin_networks: list[str] = field(default_factory=list)
    mail: bool = True
    vswitch_id: int | None = None


def firewall_rules(admin_networks: list[str], mail: bool) -> list[dict[str, str | None]]:
    """The Robot input rules of the server, most specific first.

    The Robot firewall is stateless and discards whatever no rule accepts (the final,
    implicit rule). Answers to the server's own TCP connections are let in by the ACK flag on
    the ephemeral ports, as Hetzner documents; DNS and NTP answers from Hetzner's resolvers
    and the Storage Boxes pass through ``whitelist_hos``.
    """
    if not admin_networks:
        raise ValueError("admin_networks: at least one CIDR, or nobody can reach SSH")
    rules: list[dict[str, str | None]] = []
    for index, cidr in enumerate(admin_networks, start=1):
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"admin_networks: {cidr!r} is not a CIDR network ({exc})") from None
        if net.prefixlen == 0:
            raise ValueError(f"admin_networks: {cidr!r} is the whole internet")
        version = f"ipv{net.version}"
        for label, port in (("ssh", SSH_PORT), ("kube api", KUBE_API_PORT)):
            rules.append(_tcp(f"{label} admin {index}", port, src_ip=str(net), ip_version=version))
    rules += [_tcp(name, port) for name, port in WEB_PORTS]
    if mail:
        rules += [_tcp(name, port) for name, port in MAIL_PORTS]
    rules.append(_rule("icmp", protocol="icmp"))
    rules.append(_tcp("tcp established", EPHEMERAL_PORTS, tcp_flags="ack"))
    if len(rules) > robot.MAX_RULES:
        raise ValueError(
            f"the firewall needs {len(rules)} rules for {len(admin_networks)} admin networks, "
            f"Robot takes at most {robot.MAX_RULES}: merge the admin networks into fewer CIDRs"
        )
    return rules


def _tcp(name: str, port: str, **fields: str | None) -> dict[str, str | None]:
    return _rule(name, protocol="tcp", dst_port=port, **fields)


def _rule(name: str, **fields: str | None) -> dict[str, str | None]:
    rule: dict[str, str | None] = {"name": name, "ip_version": None, "src_ip": None}
    rule.update(fields)
    rule["action"] = "accept"
    return robot.normalize_rule(rule)


class DedicatedServer(pulumi.ComponentResource):
    """The adopted server: rDNS of its IPv4 and IPv6 address, its Robot firewall and its
    vSwitch membership (if configured)."""

    rdns_ipv4: robot.ReverseDns
    rdns_ipv6: robot.ReverseDns
    firewall: robot.Firewall
    vswitch: vswitch.VSwitchAttachment | None
    server_ip: pulumi.Output[str]
    firewall_status: pulumi.Output[str]

    def __init__(
        self, name: str, args: DedicatedServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        rules = firewall_rules(args.admin_networks, args.mail)  # fail before registering
        if ipaddress.ip_address(args.ipv4).version != 4:
            raise ValueError(f"ipv4: {args.ipv4!r} is not an IPv4 address")
        if ipaddress.ip_address(args.ipv6).version != 6:
            raise ValueError(f"ipv6: {args.ipv6!r} is not an IPv6 address")
        if args.vswitch_id is not None and (
            isinstance(args.vswitch_id, bool) or args.vswitch_id <= 0
        ):
            raise ValueError(f"vswitch_id: {args.vswitch_id!r} is not a Robot vSwitch id")
        super().__init__("dezky:hetzner:DedicatedServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rdns_ipv4 = robot.ReverseDns(
            f"{name}-rdns-ipv4", ip=args.ipv4, ptr=args.hostname, opts=child
        )
        self.rdns_ipv6 = robot.ReverseDns(
            f"{name}-rdns-ipv6",
            ip=str(ipaddress.ip_address(args.ipv6)),
            ptr=args.hostname,
            opts=child,
        )
        self.firewall = robot.Firewall(
            f"{name}-firewall",
            server_number=args.server_number,
            rules=rules,
            filter_ipv6=True,  # otherwise IPv6 bypasses every rule, SSH included
            whitelist_hos=True,
            opts=child,
        )
        self.vswitch = None
        outputs: dict[str, pulumi.Output[Any]] = {}
        if args.vswitch_id is not None:
            self.vswitch = vswitch.VSwitchAttachment(
                f"{name}-vswitch",
                vswitch_id=args.vswitch_id,
                server_number=args.server_number,
                opts=child,
            )
            outputs["vswitch_status"] = self.vswitch.status
        self.server_ip = self.firewall.server_ip
        self.firewall_status = self.firewall.status
        self.register_outputs(
            {"server_ip": self.server_ip, "firewall_status": self.firewall_status, **outputs}
        )
