"""vSwitch membership of the dedicated server: the provider against the fake Robot webservice
over real HTTP on loopback, and the DedicatedServer component under Pulumi's mock runtime."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

import dill
import httpx
import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.providers.robot import (
    PermanentApiError,
    RetryableApiError,
    RobotClient,
    RobotError,
)
from components.providers.vswitch import VSwitchAttachmentProvider
from components.server import DedicatedServer, DedicatedServerArgs
from tests.fakes.http_fake import running
from tests.fakes.robot_server import SERVER_IP, SERVER_IPV6_NET, SERVER_NUMBER, FakeRobot
from tests.providers import conftest
from tests.providers.conftest import POLICY, Clock, render_component, state_payload
from tests.providers.test_robot import ARGS, configured, outs_of

VSWITCH = 4711
OTHER_SERVER = 2345679
PROPS = {"vswitch_id": VSWITCH, "server_number": SERVER_NUMBER}
ID = f"{VSWITCH}/{SERVER_NUMBER}"
FAST = conftest.FAST_RETRY


@pytest.fixture
def fake() -> Iterator[FakeRobot]:
    with running(FakeRobot()) as server:
        server.add_vswitch(VSWITCH, 4000, "dezky-private")
        server.add_server(OTHER_SERVER, "203.0.113.20", "2001:db8:1:3::")
        yield server


@pytest.fixture
def vswitch(fake: FakeRobot) -> VSwitchAttachmentProvider:
    provider = VSwitchAttachmentProvider(
        apply_timeout=2.0, poll_interval=0.01, http_timeout=2.0, retry=FAST
    )
    configured(provider, fake)
    return provider


def members(fake: FakeRobot) -> dict[int, str]:
    return {s["server_number"]: s["status"] for s in fake.vswitches[VSWITCH]["server"]}


def test_create_attaches_and_polls_until_ready(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    fake.vswitch_apply_after = 3
    created = vswitch.create(dict(PROPS))

    assert created.id == ID
    assert outs_of(created) == {
        "vswitch_id": VSWITCH,
        "server_number": SERVER_NUMBER,
        "status": "ready",
        "vlan": 4000,
        "name": "dezky-private",
    }
    assert members(fake) == {SERVER_NUMBER: "ready"}
    entry = fake.vswitches[VSWITCH]["server"][0]
    assert (entry["server_ip"], entry["server_ipv6_net"]) == (SERVER_IP, SERVER_IPV6_NET)
    assert fake.calls["POST /vswitch/server"] == 1
    assert fake.calls["GET /vswitch"] == 1 + 4  # before; 3 x "in process", then ready


def test_second_create_adopts_without_a_write(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    first = vswitch.create(dict(PROPS))
    writes = fake.writes
    second = vswitch.create(dict(PROPS))
    assert writes == 1
    assert fake.writes == writes
    assert second.outs == first.outs


def test_read_reports_drift_and_a_detach_out_of_band(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    created = vswitch.create(dict(PROPS))
    read = vswitch.read(ID, outs_of(created))
    assert (read.id, read.inputs) == (ID, dict(PROPS))
    assert vswitch.diff(ID, outs_of(read), dict(PROPS)).changes is False

    fake.vswitches[VSWITCH]["server"][0]["status"] = "failed"  # Robot lost it
    read = vswitch.read(ID, outs_of(created))
    assert outs_of(read)["status"] == "failed"
    diff = vswitch.diff(ID, outs_of(read), dict(PROPS))
    assert (diff.changes, diff.replaces) == (True, [])
    with pytest.raises(PermanentApiError, match="is 'failed' in vSwitch 4711; remove it"):
        vswitch.update(ID, outs_of(read), dict(PROPS))

    fake.vswitches[VSWITCH]["server"].clear()  # detached by hand in Robot
    assert vswitch.read(ID, outs_of(created)).id == ""  # gone: refresh drops it
    fake.vswitches[VSWITCH]["cancelled"] = True
    assert vswitch.read(ID, outs_of(created)).id == ""
    del fake.vswitches[VSWITCH]
    assert vswitch.read(ID, outs_of(created)).id == ""


def test_delete_detaches_and_waits_until_the_server_is_gone(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    created = vswitch.create(dict(PROPS))
    fake.vswitch_apply_after = 2
    gets = fake.calls["GET /vswitch"]

    vswitch.delete(ID, outs_of(created))

    assert members(fake) == {}
    assert fake.calls["DELETE /vswitch/server"] == 1
    assert fake.calls["GET /vswitch"] - gets == 1 + 3  # before; 2 x "in process", then gone
    writes = fake.writes
    vswitch.delete(ID, outs_of(created))  # already detached: a success without a write
    del fake.vswitches[VSWITCH]
    vswitch.delete(ID, outs_of(created))  # vSwitch gone too
    assert fake.writes == writes


def test_robot_that_never_finishes_is_a_retryable_error(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    fake.vswitch_apply_after = None
    vswitch.apply_timeout = 0.15
    with pytest.raises(
        RetryableApiError, match=r"^robot: vSwitch 4711 still 'in process' for it after 0.15s"
    ):
        vswitch.create(dict(PROPS))
    assert fake.calls["POST /vswitch/server"] == 1

    # The next run waits for the same membership again, and posts nothing new.
    fake.vswitch_apply_after = 0
    fake._vswitch_pending[(VSWITCH, SERVER_NUMBER)] = (0, "add")
    assert outs_of(vswitch.create(dict(PROPS)))["status"] == "ready"
    assert fake.calls["POST /vswitch/server"] == 1


def test_waits_for_another_server_in_process_before_writing(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    with RobotClient(fake.url, fake.user, fake.password, retry=FAST) as client:
        client.add_vswitch_server(VSWITCH, OTHER_SERVER)  # someone else's attach, running
        with pytest.raises(RetryableApiError, match=r"409 VSWITCH_IN_PROCESS"):
            client.add_vswitch_server(VSWITCH, SERVER_NUMBER)  # retried, then given up
    posts = fake.calls["POST /vswitch/server"]
    assert posts == 1 + FAST.attempts

    vswitch.create(dict(PROPS))
    assert members(fake) == {OTHER_SERVER: "ready", SERVER_NUMBER: "ready"}
    assert fake.calls["POST /vswitch/server"] == posts + 1  # no 409 this time: it waited


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda fake: fake.vswitches.pop(VSWITCH), "vSwitch 4711 is not in this Robot account"),
        (lambda fake: fake.vswitches[VSWITCH].update(cancelled=True), "vSwitch 4711 is cancelled"),
        (lambda fake: fake.vswitch_failing.add(SERVER_NUMBER), "ended 'failed' in vSwitch 4711"),
        (lambda fake: fake.servers.pop(SERVER_NUMBER), "server 2345678 is not in this Robot"),
    ],
)
def test_refusals_are_permanent(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider, setup: Any, message: str
) -> None:
    setup(fake)
    with pytest.raises(PermanentApiError, match=message) as err:
        vswitch.create(dict(PROPS))
    assert not isinstance(err.value, RetryableApiError)


def test_rate_limit_on_the_vswitch_endpoint_is_retried(fake: FakeRobot) -> None:
    clock = Clock()
    fake.clock = clock
    fake.rate_limit, fake.rate_interval = 1, 0.5  # one request per endpoint and window
    client = RobotClient(
        fake.url, fake.user, fake.password, retry=POLICY, sleep=clock.sleep, clock=clock
    )
    with client:
        assert client.get_vswitch(VSWITCH) is not None
        client.add_vswitch_server(VSWITCH, SERVER_NUMBER)  # 403, backoff, next window
    assert fake.calls["POST /vswitch/server"] == 1
    assert fake.requests == 3
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 0.5


def test_rate_limit_on_the_attach_is_retried_by_the_provider(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    fake.fail_next(403, method="POST")
    fake.fail_next(403, method="DELETE")
    created = vswitch.create(dict(PROPS))
    assert members(fake) == {SERVER_NUMBER: "ready"}
    vswitch.delete(created.id, outs_of(created))
    assert members(fake) == {}
    assert (fake.calls["POST /vswitch/server"], fake.calls["DELETE /vswitch/server"]) == (1, 1)


def test_the_wire_format_is_robots(fake: FakeRobot) -> None:
    auth = (fake.user, fake.password)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=fake.url, auth=auth) as http:
        by_ip = http.post(f"/vswitch/{VSWITCH}/server", content=f"server[]={SERVER_IP}",
                          headers=form)  # fmt: skip
        unknown = http.post(f"/vswitch/{VSWITCH}/server", content="server[]=1", headers=form)
        wrong = http.post(f"/vswitch/{VSWITCH}/server", content="servers=1", headers=form)
        missing = http.request("DELETE", f"/vswitch/{VSWITCH}/server", headers=form)
        view = http.get(f"/vswitch/{VSWITCH}")
        nothing = http.get("/vswitch/1")
    assert (by_ip.status_code, by_ip.content) == (201, b"")
    assert unknown.json()["error"]["code"] == "SERVER_NOT_FOUND"
    assert wrong.json()["error"]["invalid"] == ["servers"]
    assert missing.json()["error"]["missing"] == ["server[]"]
    assert view.json()["server"][0]["status"] == "in process"
    assert set(view.json()) == {"id", "name", "vlan", "cancelled", "server", "subnet",
                                "cloud_network"}  # fmt: skip
    assert nothing.json()["error"]["code"] == "NOT_FOUND"


def test_client_maps_a_missing_vswitch_to_none_and_keeps_other_errors(fake: FakeRobot) -> None:
    with RobotClient(fake.url, fake.user, fake.password, retry=FAST) as client:
        assert client.get_vswitch(99) is None
        with pytest.raises(RobotError) as err:
            client.remove_vswitch_server(VSWITCH, SERVER_NUMBER)  # not a member
    assert err.value.code == "SERVER_NOT_FOUND"


@pytest.mark.parametrize(
    ("change", "changes", "replaces"),
    [
        ({}, False, []),
        ({"vswitch_id": float(VSWITCH)}, False, []),
        ({"vswitch_id": VSWITCH + 1}, True, ["vswitch_id"]),
        ({"server_number": OTHER_SERVER}, True, ["server_number"]),
        ({"vswitch_id": UNKNOWN}, True, ["vswitch_id"]),
    ],
)
def test_diff_replaces_on_another_vswitch_or_server(
    change: dict[str, Any], changes: bool, replaces: list[str]
) -> None:
    olds = {**PROPS, "status": "ready", "vlan": 4000, "name": "x"}
    result = VSwitchAttachmentProvider().diff(ID, olds, {**PROPS, **change})
    assert (result.changes, result.replaces) == (changes, replaces)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "4711", None])
def test_check_refuses_a_bad_vswitch_id(value: Any) -> None:
    failures = VSwitchAttachmentProvider().check({}, {**PROPS, "vswitch_id": value}).failures
    assert [f.property for f in failures] == ["vswitch_id"]


def test_pickled_provider_carries_no_credentials(
    fake: FakeRobot, vswitch: VSwitchAttachmentProvider
) -> None:
    payload = state_payload(vswitch)
    assert fake.password.encode() not in payload
    assert fake.user.encode() not in payload
    restored = dill.loads(payload)  # noqa: S301 - our own payload
    assert isinstance(restored, VSwitchAttachmentProvider)
    with pytest.raises(PermanentApiError, match="robot:user"):
        restored.read(ID, {})
    assert configured(restored, fake).create(dict(PROPS)).id == ID


# --- the component -------------------------------------------------------------------------

VSW = "pulumi-python:dynamic/robot:VSwitchAttachment"


def render(args: DedicatedServerArgs) -> tuple[Any, Any, dict[str, Any]]:
    build = functools.partial(DedicatedServer, "ax41", args)
    outputs = {VSW: {"status": "ready", "vlan": 4000, "name": "dezky-private"}}
    return render_component(build, ("server_ip",), outputs)


def test_dedicated_server_joins_the_configured_vswitch() -> None:
    recorder, monitor, _ = render(dataclasses.replace(ARGS, vswitch_id=VSWITCH))
    inputs = recorder.inputs[VSW]
    assert (inputs["vswitch_id"], inputs["server_number"]) == (VSWITCH, SERVER_NUMBER)
    assert monitor.options[VSW]["name"] == "ax41-vswitch"
    assert monitor.options[VSW]["parent"].endswith("$dezky:hetzner:DedicatedServer::ax41")


def test_dedicated_server_without_a_vswitch_registers_none() -> None:
    recorder, _, _ = render(ARGS)
    assert VSW not in recorder.inputs
    assert ARGS.vswitch_id is None


@pytest.mark.parametrize("bad", [0, -4711, True])
def test_a_bad_vswitch_id_fails_before_registering(bad: int) -> None:
    with pytest.raises(ValueError, match="vswitch_id"):
        DedicatedServer("ax41", dataclasses.replace(ARGS, vswitch_id=bad))
