"""The Robot providers against the fake Robot webservice over real HTTP on loopback, and the
DedicatedServer component under Pulumi's mock runtime."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import dill
import httpx
import pytest
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.runtime.rpc import UNKNOWN

from components.providers import robot
from components.providers.robot import (
    FirewallProvider,
    PermanentApiError,
    RetryableApiError,
    ReverseDnsProvider,
    RobotClient,
    RobotError,
    encode_form,
)
from components.server import DedicatedServer, DedicatedServerArgs, firewall_rules
from tests.fakes.http_fake import running
from tests.fakes.robot_server import SERVER_IP, SERVER_NUMBER, FakeRobot
from tests.providers import conftest
from tests.providers.conftest import (
    FAST_RETRY,
    POLICY,
    Clock,
    error_texts,
    render_component,
    state_payload,
)

IPV6 = "2001:db8:1:2::2"
RULES = [
    {"name": "ssh admin", "ip_version": "ipv4", "src_ip": "198.51.100.0/24", "dst_port": "22",
     "protocol": "tcp", "action": "accept"},
    {"name": "https", "dst_port": "443", "protocol": "tcp", "action": "accept"},
    {"name": "tcp established", "dst_port": "32768-65535", "protocol": "tcp",
     "tcp_flags": "ack", "action": "accept"},
]  # fmt: skip
FIREWALL = {
    "server_number": SERVER_NUMBER,
    "rules": RULES,
    "output_rules": [{"name": "allow all", "action": "accept"}],
    "filter_ipv6": True,
    "whitelist_hos": True,
}


@pytest.fixture
def fake() -> Iterator[FakeRobot]:
    with running(FakeRobot()) as server:
        yield server


def configured(provider: Any, fake: FakeRobot, password: str | None = None) -> Any:
    """``configure`` as the provider host calls it, with the whole (namespaced) stack config."""
    raw = {
        "robot:url": fake.url,
        "robot:user": fake.user,
        "robot:password": password or fake.password,
        "dezky-infra:environment": "test",
    }
    provider.configure(ConfigureRequest(Config(raw, "dezky-infra")))
    return provider


@pytest.fixture
def rdns(fake: FakeRobot) -> ReverseDnsProvider:
    return configured(ReverseDnsProvider(http_timeout=2.0, retry=FAST_RETRY), fake)


@pytest.fixture
def firewall(fake: FakeRobot) -> FirewallProvider:
    provider = FirewallProvider(
        apply_timeout=2.0, poll_interval=0.01, http_timeout=2.0, retry=FAST_RETRY
    )
    return configured(provider, fake)


def outs_of(result: Any) -> dict[str, Any]:
    assert isinstance(result.outs, dict)
    return result.outs


# --- reverse DNS ---------------------------------------------------------------------------


def test_rdns_create_read_update_delete(fake: FakeRobot, rdns: ReverseDnsProvider) -> None:
    created = rdns.create({"ip": IPV6, "ptr": "host1.dezky.de"})
    assert (created.id, outs_of(created)) == (IPV6, {"ip": IPV6, "ptr": "host1.dezky.de"})
    assert fake.rdns == {IPV6: "host1.dezky.de"}

    fake.rdns[IPV6] = "edited.example.com"  # out of band
    read = rdns.read(IPV6, outs_of(created))
    assert read.inputs == {"ip": IPV6, "ptr": "edited.example.com"}
    diff = rdns.diff(IPV6, outs_of(read), {"ip": IPV6, "ptr": "host1.dezky.de"})
    assert (diff.changes, diff.replaces) == (True, [])

    rdns.update(IPV6, outs_of(read), {"ip": IPV6, "ptr": "host1.dezky.de"})
    assert fake.rdns[IPV6] == "host1.dezky.de"

    rdns.delete(IPV6, {})
    assert fake.rdns == {}
    assert rdns.read(IPV6, {}).id == ""  # gone: the engine drops it
    rdns.delete(IPV6, {})  # already gone: still a success


def test_rdns_second_create_adopts_without_a_write(
    fake: FakeRobot, rdns: ReverseDnsProvider
) -> None:
    rdns.create({"ip": SERVER_IP, "ptr": "host1.dezky.de"})
    assert fake.writes == 1
    rdns.create({"ip": SERVER_IP, "ptr": "host1.dezky.de"})
    assert fake.writes == 1
    assert fake.calls["POST /rdns"] == 1


def test_rdns_of_an_ip_not_ours_is_a_permanent_error(rdns: ReverseDnsProvider) -> None:
    with pytest.raises(RobotError, match=r"^robot: 404 IP_NOT_FOUND: GET /rdns/192.0.2.1") as err:
        rdns.create({"ip": "192.0.2.1", "ptr": "host1.dezky.de"})
    assert err.value.code == "IP_NOT_FOUND"


@pytest.mark.parametrize(
    ("news", "changes", "replaces"),
    [
        ({"ip": SERVER_IP, "ptr": "a.dezky.de"}, False, []),
        ({"ip": SERVER_IP, "ptr": "b.dezky.de"}, True, []),
        ({"ip": "203.0.113.11", "ptr": "a.dezky.de"}, True, ["ip"]),
        ({"ip": UNKNOWN, "ptr": "a.dezky.de"}, True, ["ip"]),
    ],
)
def test_rdns_diff_replaces_on_a_new_ip_and_updates_a_ptr(
    news: dict[str, str], changes: bool, replaces: list[str]
) -> None:
    result = ReverseDnsProvider().diff(SERVER_IP, {"ip": SERVER_IP, "ptr": "a.dezky.de"}, news)
    assert (result.changes, result.replaces) == (changes, replaces)


@pytest.mark.parametrize(
    ("news", "failed"),
    [
        ({"ip": SERVER_IP, "ptr": "a.dezky.de"}, []),
        ({"ip": "2001:DB8::1", "ptr": "a.dezky.de"}, ["ip"]),
        ({"ip": "2001:db8::/64", "ptr": "a.dezky.de"}, ["ip"]),
        ({"ip": SERVER_IP, "ptr": "a.dezky.de."}, ["ptr"]),
    ],
)
def test_rdns_check(news: dict[str, str], failed: list[str]) -> None:
    assert [f.property for f in ReverseDnsProvider().check({}, news).failures] == failed


# --- firewall ------------------------------------------------------------------------------


def test_firewall_create_polls_until_active(fake: FakeRobot, firewall: FirewallProvider) -> None:
    fake.apply_after = 3
    created = firewall.create(dict(FIREWALL))

    assert created.id == str(SERVER_NUMBER)
    outs = outs_of(created)
    assert outs["status"] == "active"
    assert outs["server_ip"] == SERVER_IP
    live = fake.firewalls[SERVER_NUMBER]
    assert live["status"] == "active"
    assert (live["filter_ipv6"], live["whitelist_hos"]) == (True, True)
    assert [r["name"] for r in live["rules"]["input"]] == ["ssh admin", "https", "tcp established"]
    assert live["rules"]["input"][0]["src_ip"] == "198.51.100.0/24"
    assert live["rules"]["input"][2]["tcp_flags"] == "ack"
    assert live["rules"]["input"][1]["ip_version"] is None
    assert fake.calls["POST /firewall"] == 1
    assert fake.calls["GET /firewall"] == 1 + 4  # before; 3 x "in process", then active
    assert outs["rules"] == [robot.normalize_rule(r) for r in RULES]


def test_firewall_second_create_makes_no_write(fake: FakeRobot, firewall: FirewallProvider) -> None:
    first = firewall.create(dict(FIREWALL))
    writes = fake.writes
    second = firewall.create(dict(FIREWALL))
    assert writes == 1
    assert fake.writes == writes
    assert second.outs == first.outs


def test_firewall_not_active_by_the_deadline_is_retryable(
    fake: FakeRobot, firewall: FirewallProvider
) -> None:
    fake.apply_after = None  # Robot never finishes
    firewall.apply_timeout = 0.15
    with pytest.raises(
        RetryableApiError, match=rf"^robot: firewall of server {SERVER_NUMBER} still 'in process'"
    ):
        firewall.create(dict(FIREWALL))
    assert fake.writes == 1


def test_firewall_drift_is_read_and_repaired(fake: FakeRobot, firewall: FirewallProvider) -> None:
    created = firewall.create(dict(FIREWALL))
    live = fake.firewalls[SERVER_NUMBER]
    live["rules"]["input"][0]["src_ip"] = "0.0.0.0/0"  # SSH opened by hand
    live["status"] = "disabled"

    read = firewall.read(created.id, outs_of(created))
    assert read.inputs is not None
    assert read.inputs["rules"][0]["src_ip"] == "0.0.0.0/0"
    diff = firewall.diff(created.id, outs_of(read), dict(FIREWALL))
    assert (diff.changes, diff.replaces) == (True, [])

    outs = outs_of(firewall.update(created.id, outs_of(read), dict(FIREWALL)))
    assert outs["status"] == "active"
    assert live["rules"]["input"][0]["src_ip"] == "198.51.100.0/24"
    assert firewall.diff(created.id, outs, dict(FIREWALL)).changes is False


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"server_number": SERVER_NUMBER + 1}, ["server_number"]),
        ({"rules": RULES[:2]}, []),
        ({"filter_ipv6": False}, []),
        ({"rules": UNKNOWN}, []),
    ],
)
def test_firewall_diff(change: dict[str, Any], replaces: list[str]) -> None:
    olds = {**FIREWALL, "server_number": float(SERVER_NUMBER), "status": "active"}
    assert FirewallProvider().diff("1", olds, dict(FIREWALL)).changes is False
    result = FirewallProvider().diff("1", olds, {**FIREWALL, **change})
    assert (result.changes, result.replaces) == (True, replaces)


def test_firewall_delete_leaves_the_firewall_in_place(
    fake: FakeRobot, firewall: FirewallProvider
) -> None:
    created = firewall.create(dict(FIREWALL))
    before = dict(fake.firewalls[SERVER_NUMBER])
    writes = fake.writes
    firewall.delete(created.id, outs_of(created))
    assert fake.writes == writes
    assert fake.firewalls[SERVER_NUMBER] == before


def test_firewall_of_an_unknown_server_is_refused(firewall: FirewallProvider) -> None:
    with pytest.raises(PermanentApiError, match="server 999 is not in this Robot account"):
        firewall.create({**FIREWALL, "server_number": 999})


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"name": "x", "action": "allow"}, "action"),
        ({"name": "x", "src_ip": "10.0.0.0/8", "action": "accept"}, "needs ip_version 'ipv4'"),
        ({"name": "x", "dst_port": "22", "action": "accept"}, "needs protocol"),
        ({"name": "x", "protocol": "udp", "tcp_flags": "ack", "action": "accept"}, "tcp_flags"),
        ({"name": "x", "protocol": "tcp", "dst_port": "70000", "action": "accept"}, "dst_port"),
        ({"name": "x!", "action": "accept"}, "name"),
        ({"name": "x", "action": "accept", "port": "22"}, "unknown fields"),
    ],
)
def test_firewall_check_refuses_bad_rules(rule: dict[str, str], problem: str) -> None:
    failures = FirewallProvider().check({}, {**FIREWALL, "rules": [rule]}).failures
    assert [f.property for f in failures] == ["rules"]
    assert problem in failures[0].reason
    too_many = FirewallProvider().check({}, {**FIREWALL, "rules": RULES * 4}).failures
    assert "at most 10" in too_many[0].reason


# --- protocol: form bodies, rate limit, login refusals -------------------------------------


def test_form_encoding_is_robots_bracket_notation() -> None:
    encoded = encode_form(
        {"status": "active", "filter_ipv6": True, "key": ["a", "b"],
         "rules": {"input": [{"name": "ssh", "dst_port": "22"}]}, "skip": None}
    )  # fmt: skip
    assert encoded == (
        "status=active&filter_ipv6=true&key%5B%5D=a&key%5B%5D=b"
        "&rules%5Binput%5D%5B0%5D%5Bname%5D=ssh&rules%5Binput%5D%5B0%5D%5Bdst_port%5D=22"
    )


def test_the_fake_refuses_json_and_unknown_fields(fake: FakeRobot) -> None:
    auth = (fake.user, fake.password)
    with httpx.Client(base_url=fake.url, auth=auth) as http:
        as_json = http.post(f"/rdns/{SERVER_IP}", json={"ptr": "a.dezky.de"})
        unknown = http.post(f"/rdns/{SERVER_IP}", data={"ptr": "a.dezky.de", "ttl": "60"})
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        missing = http.post(f"/rdns/{SERVER_IP}", content=b"", headers=form)
    assert as_json.status_code == unknown.status_code == missing.status_code == 400
    assert unknown.json()["error"] == {"status": 400, "code": "INVALID_INPUT",
                                       "message": "invalid input", "invalid": ["ttl"]}  # fmt: skip
    assert missing.json()["error"]["missing"] == ["ptr"]
    assert fake.rdns == {}


def test_rate_limit_is_retried_with_backoff(fake: FakeRobot) -> None:
    clock = Clock()
    fake.clock = clock
    fake.rate_limit, fake.rate_interval = 1, 0.5  # one request per endpoint and window
    client = RobotClient(
        fake.url, fake.user, fake.password, retry=POLICY, sleep=clock.sleep, clock=clock
    )
    with client:
        assert client.get_server(SERVER_NUMBER) is not None
        assert client.get_server(SERVER_NUMBER) is not None  # 403, backoff, next window
    assert fake.requests == 3
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 0.5


def test_rate_limit_on_a_write_is_retried(fake: FakeRobot, rdns: ReverseDnsProvider) -> None:
    fake.fail_next(403, method="POST")
    rdns.create({"ip": SERVER_IP, "ptr": "a.dezky.de"})
    assert fake.rdns == {SERVER_IP: "a.dezky.de"}
    assert fake.calls["POST /rdns"] == 1  # the refused one never reached the endpoint


def test_rate_limit_that_persists_is_a_retryable_error(
    fake: FakeRobot, rdns: ReverseDnsProvider
) -> None:
    fake.fail_next(403, times=5)
    with pytest.raises(RetryableApiError, match=r"^robot: 403 RATE_LIMIT_EXCEEDED"):
        rdns.create({"ip": SERVER_IP, "ptr": "a.dezky.de"})
    assert fake.requests == FAST_RETRY.attempts


def test_first_401_stops_at_once_and_the_lockout_is_never_reached(fake: FakeRobot) -> None:
    fake.echo_auth = True
    wrong = "wrong-password-not-to-leak"  # noqa: S105 - a test value
    provider = configured(ReverseDnsProvider(retry=FAST_RETRY), fake, password=wrong)
    with pytest.raises(RobotError, match=r"^robot: 401 UNAUTHORIZED: GET /rdns/") as err:
        provider.create({"ip": SERVER_IP, "ptr": "a.dezky.de"})
    assert fake.requests == 1
    assert "robot:password" in str(err.value)
    for text in error_texts(err.value):
        assert wrong not in text
        assert fake.password not in text
        assert httpx.BasicAuth(fake.user, wrong)._auth_header.split()[1] not in text

    # Other resources of the same run with the same credentials send nothing more.
    other = configured(FirewallProvider(retry=FAST_RETRY), fake, password=wrong)
    with pytest.raises(RobotError, match="refused these credentials earlier"):
        other.create(dict(FIREWALL))
    assert fake.requests == 1
    assert fake.failed_logins == 1
    assert fake.locked_until is None


def test_the_fake_locks_out_after_three_failed_logins(fake: FakeRobot) -> None:
    clock = Clock()
    fake.clock = clock
    with httpx.Client(base_url=fake.url) as http:
        for _ in range(3):
            assert http.get("/server", auth=(fake.user, "bad")).status_code == 401
        right = (fake.user, fake.password)
        assert http.get(f"/server/{SERVER_NUMBER}", auth=right).status_code == 401
        clock.now += 601
        assert http.get(f"/server/{SERVER_NUMBER}", auth=right).status_code == 200


def test_server_errors_are_retried(fake: FakeRobot, rdns: ReverseDnsProvider) -> None:
    fake.fail_next(503)
    rdns.create({"ip": SERVER_IP, "ptr": "a.dezky.de"})
    assert fake.rdns == {SERVER_IP: "a.dezky.de"}


def test_the_client_cannot_order_cancel_or_reset() -> None:
    names = [n for n in dir(RobotClient) if not n.startswith("__")]
    forbidden = ("order", "cancel", "reset", "rescue", "boot", "wol", "transaction")
    assert [n for n in names if any(word in n for word in forbidden)] == []


def test_without_config_the_provider_names_the_missing_keys() -> None:
    with pytest.raises(PermanentApiError, match="robot:user and robot:password"):
        ReverseDnsProvider().create({"ip": SERVER_IP, "ptr": "a.dezky.de"})


def test_pickled_provider_carries_no_credentials(
    fake: FakeRobot, firewall: FirewallProvider
) -> None:
    payload = state_payload(firewall)
    assert fake.password.encode() not in payload
    assert fake.user.encode() not in payload
    assert fake.url.encode() not in payload
    assert b"components.providers.robot" in payload
    restored = dill.loads(payload)  # noqa: S301 - our own payload
    assert isinstance(restored, FirewallProvider)
    assert restored.poll_interval == 0.01
    with pytest.raises(PermanentApiError, match="robot:user"):
        restored.read(str(SERVER_NUMBER), {})
    configured(restored, fake)
    assert restored.create(dict(FIREWALL)).id == str(SERVER_NUMBER)


# --- the component -------------------------------------------------------------------------

RDNS = "pulumi-python:dynamic/robot:ReverseDns"
FW = "pulumi-python:dynamic/robot:Firewall"


class _AllRecorder(conftest.Recorder):
    """Keeps every registration by name (two ReverseDns children share one type)."""

    def __init__(self, outputs: Any) -> None:
        super().__init__(outputs)
        self.by_name: dict[str, tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        self.by_name[args.name] = (args.typ, dict(args.inputs))
        return super().new_resource(args)


def render_server(
    args: DedicatedServerArgs, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any, dict[str, Any]]:
    monkeypatch.setattr(conftest, "Recorder", _AllRecorder)
    build = functools.partial(DedicatedServer, "ax41", args)
    outputs = {FW: {"status": "active", "server_ip": SERVER_IP}}
    return render_component(build, ("server_ip", "firewall_status"), outputs)


ARGS = DedicatedServerArgs(
    server_number=SERVER_NUMBER, ipv4=SERVER_IP, ipv6=IPV6, hostname="host1.dezky.de",
    admin_networks=["198.51.100.0/24"], mail=True,
)  # fmt: skip


def test_dedicated_server_registers_rdns_and_firewall(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, monitor, seen = render_server(ARGS, monkeypatch)

    assert seen == {"server_ip": SERVER_IP, "firewall_status": "active"}
    by_name = recorder.by_name
    assert set(by_name) == {"ax41", "ax41-rdns-ipv4", "ax41-rdns-ipv6", "ax41-firewall"}
    assert by_name["ax41-rdns-ipv4"][1]["ip"] == SERVER_IP
    assert by_name["ax41-rdns-ipv6"][1]["ip"] == IPV6
    assert {by_name[n][1]["ptr"] for n in ("ax41-rdns-ipv4", "ax41-rdns-ipv6")} == {
        "host1.dezky.de"
    }
    fw = by_name["ax41-firewall"][1]
    assert (fw["server_number"], fw["filter_ipv6"], fw["whitelist_hos"]) == (
        SERVER_NUMBER, True, True,
    )  # fmt: skip
    for typ in (RDNS, FW):
        assert monitor.options[typ]["parent"].endswith("$dezky:hetzner:DedicatedServer::ax41")

    rules = {r["name"]: r for r in fw["rules"]}
    assert FirewallProvider().check({}, dict(fw)).failures == []
    for name in ("ssh admin 1", "kube api admin 1"):
        assert (rules[name]["src_ip"], rules[name]["ip_version"]) == ("198.51.100.0/24", "ipv4")
    assert [rules[n]["dst_port"] for n in ("ssh admin 1", "kube api admin 1")] == ["22", "6443"]
    open_ports = {r.get("dst_port") for r in fw["rules"] if r.get("src_ip") is None}
    assert open_ports == {"80", "443", "25", "465", "587", "993", "32768-65535", None}
    assert rules["tcp established"]["tcp_flags"] == "ack"
    assert rules["icmp"]["protocol"] == "icmp"
    assert all(r["action"] == "accept" for r in fw["rules"])  # the rest: implicit discard


def test_without_mail_no_mail_ports_are_open() -> None:
    ports = {r["dst_port"] for r in firewall_rules(["198.51.100.0/24", "2001:db8:9::/48"], False)}
    assert ports.isdisjoint({"25", "465", "587", "993"})
    assert {"22", "6443", "80", "443"} <= ports


@pytest.mark.parametrize(
    ("networks", "problem"),
    [
        ([], "at least one"),
        (["0.0.0.0/0"], "whole internet"),
        (["198.51.100.1/24"], "not a CIDR"),
        (["198.51.100.0/24", "203.0.113.0/24"], "at most 10"),
    ],
)
def test_admin_networks_are_checked_before_anything_registers(
    networks: list[str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        firewall_rules(networks, mail=True)
