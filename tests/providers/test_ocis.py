"""SpaceProvider and OcisClient against the fake OCIS over real HTTP on loopback."""

from __future__ import annotations

import functools
import time
from typing import Any

import dill
import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.providers.ocis import (
    ApiError,
    OcisClient,
    OdataError,
    PermanentApiError,
    RetryableApiError,
    SpaceProvider,
)
from tests.fakes.ocis_server import FakeOcis
from tests.providers.conftest import (
    FAST_RETRY,
    POLICY,
    Clock,
    clocked_client,
    configured,
    error_texts,
    state_payload,
)

# The documented unified role ids (OCIS unifiedrole/roles.go), written out on purpose.
EDITOR = "58c63c02-1d89-4572-916a-870abc5a1b7d"
MANAGER = "312c0871-5ef7-4b3a-85b6-0e4074c64049"
GB = 10**9
INPUTS: dict[str, Any] = {
    "name": "Acme GmbH",
    "tenant_slug": "acme",
    "quota_bytes": 50 * GB,
    "member_group": "acme",
    "manager_group": "acme-admins",
    "enabled": True,
    "tenant_status": "active",
    "purge": False,
}
client_for = functools.partial(clocked_client, OcisClient)


@pytest.fixture
def provider(ocis: FakeOcis) -> SpaceProvider:
    """Here instead of conftest's Stalwart ``provider``."""
    return configured(SpaceProvider(http_timeout=2.0, retry=FAST_RETRY), ocis.url, ocis.token)


# --- create: one space per tenant, found again by its marker --------------------------------


def test_create_makes_the_space_with_quota_marker_and_group_roles(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    result = provider.create(dict(INPUTS))

    (space,) = ocis.registry.projects()
    assert result.id == space["id"] and result.id.startswith("storage-users-1$")
    assert (space["name"], space["quota"], space["alias"]) == (
        "Acme GmbH",
        50 * GB,
        "project/dezky-infra.acme",
    )
    grants = ocis.registry.grants(result.id)
    assert (grants["acme"], grants["acme-admins"]) == (EDITOR, MANAGER)
    assert result.outs == {
        **INPUTS,
        "drive_id": result.id,
        "web_url": f"{ocis.url}/f/{result.id}",
    }


def test_second_create_and_refresh_adopt_the_space_without_any_write(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    first = provider.create(dict(INPUTS))
    writes = ocis.writes
    second = provider.create(dict(INPUTS))
    read = provider.read(first.id, first.outs or {})

    assert writes == 3  # the space and two invites
    assert ocis.writes == writes
    assert second.id == first.id and second.outs == first.outs
    assert len(ocis.registry.projects()) == 1
    assert read.outs == first.outs
    assert provider.diff(first.id, read.outs, {**INPUTS, "__provider": "x"}).changes is False


def test_a_create_interrupted_after_the_post_is_adopted_not_repeated(ocis: FakeOcis) -> None:
    provider = configured(SpaceProvider(http_timeout=0.2, retry=FAST_RETRY), ocis.url, ocis.token)
    ocis.slow_next(0.5, method="POST")  # OCIS makes the space after the client gave up
    with pytest.raises(RetryableApiError, match=r"^ocis: timeout on POST /graph/v1.0/drives"):
        provider.create(dict(INPUTS))
    deadline = time.monotonic() + 3
    while not ocis.registry.projects() and time.monotonic() < deadline:
        time.sleep(0.02)

    result = provider.create(dict(INPUTS))
    assert [d["id"] for d in ocis.registry.projects()] == [result.id]
    assert ocis.calls["POST /graph/v1.0/drives"] == 1  # never resent, never repeated
    assert ocis.registry.grants(result.id)["acme"] == EDITOR


def test_a_space_with_the_same_name_is_not_taken_for_ours(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    with OcisClient(ocis.url, ocis.token) as client:
        theirs = client.create_drive("Acme GmbH", GB, "made by hand", "project/acme-gmbh")
    result = provider.create(dict(INPUTS))

    assert result.id != theirs["id"]
    assert len(ocis.registry.projects()) == 2
    assert ocis.registry.drives[theirs["id"]]["quota"] == GB


def test_two_spaces_with_our_marker_stop_the_create(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    with OcisClient(ocis.url, ocis.token) as client:
        for _ in range(2):
            client.create_drive("Acme GmbH", GB, "", "project/dezky-infra.acme")
    writes = ocis.writes
    with pytest.raises(PermanentApiError, match=r"^ocis: 2 spaces carry the alias"):
        provider.create(dict(INPUTS))
    assert ocis.writes == writes


def test_missing_groups_are_created_then_granted(ocis: FakeOcis, provider: SpaceProvider) -> None:
    ocis.registry.groups.clear()  # nobody of the tenant has logged in to OCIS yet
    result = provider.create(dict(INPUTS))

    names = sorted(g["displayName"] for g in ocis.registry.groups.values())
    assert names == ["acme", "acme-admins"]
    assert ocis.registry.grants(result.id)["acme-admins"] == MANAGER
    assert ocis.calls["POST /graph/v1.0/groups"] == 2


def test_a_tenant_created_suspended_gets_a_disabled_space_with_its_grants(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    result = provider.create({**INPUTS, "enabled": False, "tenant_status": "suspended"})
    assert ocis.registry.drives[result.id]["disabled"] is True
    assert (result.outs or {})["enabled"] is False
    assert ocis.registry.grants(result.id)["acme"] == EDITOR


# --- check and diff ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("news", "failed"),
    [
        (INPUTS, []),
        ({**INPUTS, "quota_bytes": 50.0 * GB, "name": UNKNOWN}, []),
        ({**INPUTS, "name": "Acme Co. KG"}, ["name"]),
        ({**INPUTS, "name": " Acme"}, ["name"]),
        ({**INPUTS, "tenant_slug": "Acme--x"}, ["tenant_slug"]),
        ({**INPUTS, "quota_bytes": 0}, ["quota_bytes"]),
        ({**INPUTS, "quota_bytes": True}, ["quota_bytes"]),
        ({**INPUTS, "quota_bytes": 1.5}, ["quota_bytes"]),
        ({**INPUTS, "manager_group": "acme"}, ["manager_group"]),
        ({**INPUTS, "member_group": ""}, ["member_group"]),
        ({**INPUTS, "enabled": "yes", "purge": None}, ["enabled", "purge"]),
        ({**INPUTS, "tenant_status": "gone"}, ["tenant_status"]),
    ],
)
def test_check_validates_every_input(news: dict[str, Any], failed: list[str]) -> None:
    result = SpaceProvider().check({}, dict(news))
    assert [f.property for f in result.failures] == failed
    assert result.inputs == news


@pytest.mark.parametrize(
    ("news", "changes"),
    [
        (INPUTS, False),
        ({**INPUTS, "quota_bytes": 50.0 * GB}, False),  # a number back from the engine
        ({**INPUTS, "quota_bytes": 250 * GB}, True),
        ({**INPUTS, "name": "Acme AG"}, True),
        ({**INPUTS, "enabled": False}, True),
        ({**INPUTS, "member_group": "acme-staff"}, True),
        ({**INPUTS, "tenant_status": "offboarding", "purge": True}, True),
        ({**INPUTS, "tenant_slug": "acme-ag"}, True),
        ({**INPUTS, "quota_bytes": UNKNOWN}, True),
    ],
)
def test_diff_is_explicit_and_never_replaces(news: dict[str, Any], changes: bool) -> None:
    olds = {**INPUTS, "drive_id": "storage-users-1$d1", "web_url": "https://x/f/d1"}
    result = SpaceProvider().diff("storage-users-1$d1", olds, {**news, "__provider": "new"})
    assert result.changes is changes
    assert result.replaces == []
    assert result.delete_before_replace is False


# --- read and update ---------------------------------------------------------------------


def test_read_reports_quota_and_grant_drift_and_a_space_deleted_behind_our_back(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    space = ocis.registry.drives[created.id]

    space["quota"] = 7 * GB
    del space["grants"][f"g:{ocis.registry.group_id('acme')}"]
    read = provider.read(created.id, created.outs or {})
    assert (read.outs["quota_bytes"], read.outs["member_group"]) == (7 * GB, "")
    assert read.inputs == {**INPUTS, "quota_bytes": 7 * GB, "member_group": ""}
    diff = provider.diff(created.id, read.outs, dict(INPUTS))
    assert (diff.changes, diff.replaces) == (True, [])

    del ocis.registry.drives[created.id]
    gone = provider.read(created.id, created.outs or {})
    assert gone.id == ""


def test_update_patches_only_what_changed(ocis: FakeOcis, provider: SpaceProvider) -> None:
    created = provider.create(dict(INPUTS))
    writes = ocis.writes
    news = {**INPUTS, "quota_bytes": 250 * GB, "name": "Acme AG"}

    outs = provider.update(created.id, created.outs or {}, news).outs or {}
    assert ocis.registry.drives[created.id]["quota"] == 250 * GB
    assert ocis.registry.drives[created.id]["name"] == "Acme AG"
    assert (outs["quota_bytes"], outs["name"], outs["drive_id"]) == (
        250 * GB,
        "Acme AG",
        created.id,
    )
    assert ocis.writes == writes + 1
    assert ocis.calls["PATCH /graph/v1.0/drives/{id}"] == 1

    provider.update(created.id, outs, news)
    assert ocis.writes == writes + 1


def test_update_repairs_drifted_grants_and_moves_the_member_role(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    registry = ocis.registry
    space = registry.drives[created.id]
    space["grants"][f"g:{registry.group_id('acme-admins')}"]["role"] = EDITOR  # demoted by hand
    space["grants"]["u:jane"] = {"kind": "user", "id": "jane", "role": EDITOR}  # added by hand
    staff = registry.add_group("acme-staff")

    provider.update(created.id, created.outs or {}, {**INPUTS, "member_group": "acme-staff"})
    grants = registry.grants(created.id)
    assert grants["acme-admins"] == MANAGER
    assert grants["acme-staff"] == EDITOR and f"g:{staff}" in space["grants"]
    assert "acme" not in grants  # the group this resource granted before
    assert grants["jane"] == EDITOR  # people added by the tenant stay


def test_suspend_disables_the_space_and_active_restores_it(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    suspended = {**INPUTS, "enabled": False, "tenant_status": "suspended"}

    outs = provider.update(created.id, created.outs or {}, suspended).outs or {}
    assert ocis.registry.drives[created.id]["disabled"] is True
    assert outs["enabled"] is False
    read = provider.read(created.id, outs)
    assert read.outs["enabled"] is False and read.outs["member_group"] == "acme"
    writes = ocis.writes
    assert provider.update(created.id, read.outs, suspended).outs == outs
    assert ocis.writes == writes

    back = provider.update(created.id, outs, dict(INPUTS)).outs or {}
    assert ocis.registry.drives[created.id]["disabled"] is False
    assert back["enabled"] is True
    assert ocis.registry.grants(created.id)["acme"] == EDITOR
    assert ocis.writes == writes + 1  # the restore only


def test_update_of_a_vanished_space_says_what_to_do(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    del ocis.registry.drives[created.id]
    with pytest.raises(PermanentApiError, match="no longer exists; `refresh` drops it"):
        provider.update(created.id, created.outs or {}, dict(INPUTS))


# --- delete: disable, purge only on an explicit offboarding -------------------------------


@pytest.mark.parametrize(
    ("status", "purge", "purged"),
    [
        ("active", False, False),
        ("active", True, False),
        ("suspended", True, False),
        ("offboarding", False, False),
        ("offboarding", True, True),
    ],
)
def test_delete_disables_and_purges_only_an_offboarding_tenant_that_asked(
    ocis: FakeOcis, provider: SpaceProvider, status: str, purge: bool, purged: bool
) -> None:
    created = provider.create(dict(INPUTS))
    state = {**(created.outs or {}), "tenant_status": status, "purge": purge}

    provider.delete(created.id, state)
    if purged:
        assert created.id not in ocis.registry.drives
    else:
        assert ocis.registry.drives[created.id]["disabled"] is True
    writes = ocis.writes
    provider.delete(created.id, state)  # a retried delete changes nothing more
    assert ocis.writes == writes


def test_purge_of_an_enabled_space_is_refused_with_the_odata_error(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    with OcisClient(ocis.url, ocis.token) as client, pytest.raises(OdataError) as err:
        client.purge_drive(created.id)
    assert (err.value.status, err.value.code) == (400, "invalidRequest")
    assert str(err.value) == (
        f"ocis: 400 Bad Request: DELETE /graph/v1.0/drives/{created.id}: "
        "invalidRequest: error: bad request: can't purge enabled space"
    )
    assert ocis.registry.drives[created.id]["disabled"] is False


def test_odata_errors_of_the_permission_endpoints_are_mapped(
    ocis: FakeOcis, provider: SpaceProvider
) -> None:
    created = provider.create(dict(INPUTS))
    group = ocis.registry.group_id("acme") or ""
    file_viewer = "b1e2218d-eef8-4d4c-b82d-0f1a1b48f3b5"
    with OcisClient(ocis.url, ocis.token) as client:
        with pytest.raises(OdataError, match="invalidRequest: role not applicable") as wrong:
            client.invite_group(created.id, ocis.registry.add_group("x"), file_viewer)
        with pytest.raises(OdataError, match="nameAlreadyExists") as twice:
            client.invite_group(created.id, group, EDITOR)
        assert client.get_drive("storage-users-1$missing") is None
        assert client.remove_permission(created.id, "g:missing") is False
    assert (wrong.value.status, twice.value.status) == (400, 409)


def test_group_lookup_follows_next_links_but_only_to_the_same_host(ocis: FakeOcis) -> None:
    for similar in ("old-acme-staff", "acme-staff-2"):  # $search matches substrings
        ocis.registry.add_group(similar)
    staff = ocis.registry.add_group("acme-staff")
    ocis.registry.page_size = 1
    with OcisClient(ocis.url, ocis.token) as client:
        assert (client.find_group("acme-staff") or {}).get("id") == staff
        assert ocis.calls["GET /graph/v1.0/groups"] == 3
        ocis.registry.link_base = "http://203.0.113.9"
        with pytest.raises(PermanentApiError, match="nextLink leaves 127.0.0.1"):
            client.find_group("acme-staff")


# --- transport failures ------------------------------------------------------------------


def test_429_is_retried_after_the_servers_retry_after(ocis: FakeOcis) -> None:
    clock = Clock()
    ocis.fail_next(429, times=2, retry_after="3")
    with client_for(ocis, clock) as client:
        assert client.create_drive("Acme GmbH", GB, "", "project/dezky-infra.acme")["id"]
    assert clock.sleeps == [3.0, 3.0]
    assert len(ocis.registry.projects()) == 1


def test_a_500_then_success_on_a_read(ocis: FakeOcis) -> None:
    clock = Clock()
    ocis.fail_next(500)
    with client_for(ocis, clock) as client:
        assert [d["driveType"] for d in client.list_project_drives()] == []
    assert len(clock.sleeps) == 1 and 0.5 <= clock.sleeps[0] <= 1.0
    assert ocis.requests == 2


def test_a_500_on_a_create_is_not_resent(ocis: FakeOcis) -> None:
    clock = Clock()
    ocis.fail_next(500, times=3)
    with client_for(ocis, clock) as client, pytest.raises(RetryableApiError) as err:
        client.create_drive("Acme GmbH", GB, "", "project/dezky-infra.acme")
    assert str(err.value) == (
        "ocis: 500 Internal Server Error: POST /graph/v1.0/drives: "
        "generalException: injected failure (retryable)"
    )
    assert (clock.sleeps, ocis.requests, ocis.registry.projects()) == ([], 1, [])


def test_a_timeout_on_every_try_is_retryable(ocis: FakeOcis) -> None:
    clock = Clock()
    ocis.slow_next(1.0, times=POLICY.attempts)
    with (
        client_for(ocis, clock, timeout=0.1) as client,
        pytest.raises(RetryableApiError, match=r"^ocis: timeout on GET /graph/v1.0/drives/") as err,
    ):
        client.get_drive("storage-users-1$d1")
    assert err.value.retryable is True
    assert len(clock.sleeps) == POLICY.attempts - 1


def test_401_is_permanent_and_not_retried(ocis: FakeOcis) -> None:
    clock = Clock()
    with (
        client_for(ocis, clock, token=f"{ocis.token}-stale") as client,
        pytest.raises(PermanentApiError, match=r"^ocis: 401 Unauthorized: GET /graph/v1.0/") as err,
    ):
        client.list_project_drives()
    assert (err.value.status, ocis.requests, clock.sleeps) == (401, 1, [])


@pytest.mark.parametrize("scenario", ["401", "400", "503", "timeout"])
def test_the_token_never_appears_in_an_error(ocis: FakeOcis, scenario: str) -> None:
    ocis.echo_auth = True  # the server quotes the Authorization header back
    clock = Clock()
    token = ocis.token if scenario != "401" else f"{ocis.token}-stale"
    if scenario in ("400", "503"):
        ocis.fail_next(int(scenario), times=9)
    if scenario == "timeout":
        ocis.slow_next(1.0, times=9)
    with (
        client_for(ocis, clock, token=token, timeout=0.1) as client,
        pytest.raises(ApiError) as err,
    ):
        client.get_drive("storage-users-1$d1")

    assert str(err.value).startswith("ocis: ")
    for text in error_texts(err.value):
        assert token not in text
        assert ocis.token not in text


# --- credentials -------------------------------------------------------------------------


def test_without_config_the_provider_names_the_missing_keys() -> None:
    with pytest.raises(PermanentApiError, match="ocis:url and ocis:token"):
        SpaceProvider().create(dict(INPUTS))


def test_pickled_provider_carries_no_credentials(ocis: FakeOcis) -> None:
    provider = configured(SpaceProvider(http_timeout=7.0), ocis.url, ocis.token)
    payload = state_payload(provider)

    assert ocis.token.encode() not in payload
    assert ocis.url.encode() not in payload
    assert b"components.providers.ocis" in payload  # by reference, not by value
    restored = dill.loads(payload)  # noqa: S301 - our own payload
    assert isinstance(restored, SpaceProvider)
    assert restored.http_timeout == 7.0
    with pytest.raises(PermanentApiError, match="ocis:url"):
        restored.read("storage-users-1$d1", {})
