"""OCIS project spaces as a Pulumi dynamic resource: client, provider, resource.

``OcisClient`` speaks libregraph (``_ocis_graph``), ``SpaceProvider`` implements
check/diff/create/read/update/delete on it, ``Space`` is the typed resource.

Identity: after the first create the stored drive id (also the Pulumi id) is the space. Space
names are not unique, so the first create finds an earlier attempt's space by a marker we
control: the drive alias ``project/dezky-infra.<slug>``. A ``.`` cannot occur in a space name,
so no alias OCIS derives from a name (``project/<name>``) can equal it; the alias survives a
disable, is not shown in the web UI and so is not edited by tenant managers (unlike the
description, which is only set once, for people).

Credentials come only from the stack config ``ocis:url`` and ``ocis:token`` and are never
pickled into state (``_base.TokenProvider``).
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers._base import TokenProvider, config_keys, known_problems, slug_problem
from components.providers._http import ApiError, PermanentApiError, RetryableApiError
from components.providers._ocis_graph import (
    SPACE_EDITOR,
    SPACE_MANAGER,
    SPACE_VIEWER,
    SYSTEM,
    OcisClient,
    OdataError,
    grants_by_group,
    is_enabled,
    quota_total,
    space_name,
    space_name_problem,
)

__all__ = [
    "CONFIG_TOKEN",
    "CONFIG_URL",
    "SPACE_EDITOR",
    "SPACE_MANAGER",
    "SPACE_VIEWER",
    "ApiError",
    "OcisClient",
    "OdataError",
    "PermanentApiError",
    "RetryableApiError",
    "Space",
    "SpaceProvider",
    "marker_alias",
    "space_name",
    "space_name_problem",
]

CONFIG_URL, CONFIG_TOKEN = config_keys(SYSTEM)

STATUSES = ("active", "suspended", "offboarding")
_ALIAS = "project/dezky-infra.{slug}"
_ALIAS_RE = re.compile(r"^project/dezky-infra\.([a-z0-9-]+)$")
_DESCRIPTION = "Files of tenant {slug}, managed by dezky-infra"
_INPUTS = (
    "name",
    "tenant_slug",
    "quota_bytes",
    "member_group",
    "manager_group",
    "enabled",
    "tenant_status",
    "purge",
)
_GRANTS = (("member_group", SPACE_EDITOR), ("manager_group", SPACE_MANAGER))


def marker_alias(slug: str) -> str:
    """The drive alias that marks the space of tenant ``slug`` as ours."""
    return _ALIAS.format(slug=slug)


def _quota_problem(value: object) -> str | None:
    # Numbers cross the engine as doubles: an integral float is fine.
    if isinstance(value, int | float) and not isinstance(value, bool) and value == int(value) > 0:
        return None
    return "must be a whole number of bytes above 0"


def _group_problem(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return "must name an OCIS group (its display name)"


def _bool_problem(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _status_problem(value: object) -> str | None:
    return None if value in STATUSES else f"must be one of {', '.join(STATUSES)}"


_CHECKS = (
    ("name", space_name_problem),
    ("tenant_slug", slug_problem),
    ("quota_bytes", _quota_problem),
    ("member_group", _group_problem),
    ("manager_group", _group_problem),
    ("enabled", _bool_problem),
    ("tenant_status", _status_problem),
    ("purge", _bool_problem),
)


def _problems(news: dict[str, Any]) -> list[tuple[str, str]]:
    found = known_problems(news, _CHECKS)
    member, manager = news.get("member_group"), news.get("manager_group")
    if member != UNKNOWN and isinstance(member, str) and member.strip() and member == manager:
        found.append(("manager_group", "must differ from member_group: one group, one role"))
    return found


class SpaceProvider(TokenProvider[OcisClient]):
    """CRUD for one OCIS project space and its group grants; credentials only from config."""

    system = SYSTEM
    product = "OCIS"
    client_type = OcisClient
    inputs = _INPUTS
    # Nothing replaces: a new space would be an empty one, and the old one's files would go.
    stables = ("drive_id",)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = [dynamic.CheckFailure(key, reason) for key, reason in _problems(news)]
        return dynamic.CheckResult(dict(news), failures)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        slug = str(props["tenant_slug"])
        with self._client() as client:
            drive = self._find(client, slug)
            if drive is None:
                drive = client.create_drive(
                    str(props["name"]),
                    int(props["quota_bytes"]),
                    _DESCRIPTION.format(slug=slug),
                    marker_alias(slug),
                )
            drive = self._converge(client, drive, props, previous=())
        return dynamic.CreateResult(str(drive["id"]), _outs(drive, props, props))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            drive = client.get_drive(id_)
            if drive is None:
                return self._read_result(id_, None)
            # Grants on a disabled space are not checked: its members are restored with it.
            granted = self._granted(client, id_, props) if is_enabled(drive) else props
        return self._read_result(id_, _outs(drive, props, granted))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        previous = tuple(str(olds.get(key) or "") for key, _ in _GRANTS)
        with self._client() as client:
            drive = client.get_drive(id_)
            if drive is None:
                raise PermanentApiError(
                    SYSTEM,
                    f"space {id_} no longer exists; `refresh` drops it from the state, "
                    "then `up` creates a new one",
                )
            drive = self._converge(client, drive, news, previous=previous)
        return dynamic.UpdateResult(_outs(drive, news, news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Disable the space; purge it only for an offboarding tenant that asked for a purge."""
        purge = props.get("purge") is True and props.get("tenant_status") == "offboarding"
        with self._client() as client:
            drive = client.get_drive(id_)
            if drive is None:
                return  # already gone: still a success
            if is_enabled(drive):
                client.disable_drive(id_)
            if purge:
                client.purge_drive(id_)

    # --- helpers -------------------------------------------------------------------------

    def _find(self, client: OcisClient, slug: str) -> dict[str, Any] | None:
        """The tenant's space from an earlier (interrupted) create, found by our alias."""
        alias = marker_alias(slug)
        found = [d for d in client.list_project_drives() if d.get("driveAlias") == alias]
        if len(found) > 1:
            ids = ", ".join(sorted(str(d.get("id")) for d in found))
            raise PermanentApiError(
                SYSTEM,
                f"{len(found)} spaces carry the alias {alias!r} ({ids}); keep the tenant's one, "
                "change the alias of the others, then run again",
            )
        return found[0] if found else None

    def _converge(
        self,
        client: OcisClient,
        drive: dict[str, Any],
        want: dict[str, Any],
        previous: tuple[str, ...],
    ) -> dict[str, Any]:
        """Make the live space match ``want``; every write is skipped when already true."""
        drive_id = str(drive["id"])
        if want["enabled"] and not is_enabled(drive):
            drive = client.restore_drive(drive_id)
        patch: dict[str, Any] = {}
        if drive.get("name") != want["name"]:
            patch["name"] = want["name"]
        if quota_total(drive) != int(want["quota_bytes"]):
            patch["quota"] = {"total": int(want["quota_bytes"])}
        if drive.get("driveAlias") != marker_alias(str(want["tenant_slug"])):
            patch["driveAlias"] = marker_alias(str(want["tenant_slug"]))
        if patch:
            drive = client.update_drive(drive_id, patch)
        if is_enabled(drive):
            self._grant(client, drive_id, want, previous)
        if not want["enabled"] and is_enabled(drive):
            client.disable_drive(drive_id)  # 204 without a body: mark it as OCIS lists it
            root = drive.get("root")
            root = dict(root) if isinstance(root, dict) else {}
            drive = {**drive, "root": {**root, "deleted": {"state": "trashed"}}}
        return drive

    def _grant(
        self,
        client: OcisClient,
        drive_id: str,
        want: dict[str, Any],
        previous: tuple[str, ...],
    ) -> None:
        """Editor for the member group, Manager for the admins; drop grants we gave before."""
        by_group = grants_by_group(client.list_root_permissions(drive_id))
        wanted = {str(want[key]): role for key, role in _GRANTS}
        for name, role in wanted.items():
            group = _ensure_group(client, name)
            perm = by_group.get(str(group.get("id")))
            if perm is None:
                client.invite_group(drive_id, str(group["id"]), role)
            elif perm.get("roles") != [role]:
                client.set_permission_role(drive_id, str(perm["id"]), role)
        # Only groups this resource managed are removed: people added by hand stay.
        for name in {p for p in previous if p and p not in wanted}:
            old = client.find_group(name)
            perm = by_group.get(str(old.get("id"))) if old else None
            if perm is not None:
                client.remove_permission(drive_id, str(perm["id"]))

    def _granted(self, client: OcisClient, drive_id: str, props: dict[str, Any]) -> dict[str, str]:
        """The group names of ``props`` that hold their role; "" where the grant is missing."""
        by_group = grants_by_group(client.list_root_permissions(drive_id))
        granted: dict[str, str] = {}
        for key, role in _GRANTS:
            name = props.get(key)
            group = client.find_group(name) if isinstance(name, str) and name else None
            perm = by_group.get(str(group.get("id"))) if group else None
            held = perm is not None and role in (perm.get("roles") or [])
            granted[key] = str(name) if held else ""
        return granted


def _ensure_group(client: OcisClient, name: str) -> dict[str, Any]:
    """The OCIS group called ``name``, created when missing: group sync from the IdP only
    creates it at a member's first login, and a space grant needs its id before that."""
    group = client.find_group(name)
    if group is None:
        try:
            group = client.create_group(name)
        except OdataError as err:
            if err.status != 409:
                raise
            group = client.find_group(name)  # made meanwhile, e.g. by a login's group sync
    if group is None or not group.get("id"):
        raise PermanentApiError(SYSTEM, f"group {name!r} has no id in OCIS")
    return group


def _owner(drive: dict[str, Any]) -> str:
    alias = drive.get("driveAlias")
    match = _ALIAS_RE.match(alias) if isinstance(alias, str) else None
    return match.group(1) if match else ""


def _outs(drive: dict[str, Any], props: dict[str, Any], granted: dict[str, Any]) -> dict[str, Any]:
    """Live state in the inputs' keys (so ``diff`` sees drift) plus the space's outputs."""
    return {
        "name": str(drive.get("name") or ""),
        "tenant_slug": _owner(drive),
        "quota_bytes": quota_total(drive),
        "member_group": str(granted.get("member_group") or ""),
        "manager_group": str(granted.get("manager_group") or ""),
        "enabled": is_enabled(drive),
        # Not OCIS state: what delete needs to know, kept as last applied.
        "tenant_status": str(props.get("tenant_status") or ""),
        "purge": props.get("purge") is True,
        "drive_id": str(drive["id"]),
        "web_url": str(drive.get("webUrl") or ""),
    }


class Space(dynamic.Resource, module="ocis", name="Space"):
    """An OCIS project space of one tenant, with its quota and group grants."""

    name: pulumi.Output[str]
    tenant_slug: pulumi.Output[str]
    quota_bytes: pulumi.Output[int]
    """The live ``quota.total`` in bytes (the engine may hand it back as a float)."""
    member_group: pulumi.Output[str]
    manager_group: pulumi.Output[str]
    enabled: pulumi.Output[bool]
    tenant_status: pulumi.Output[str]
    purge: pulumi.Output[bool]
    drive_id: pulumi.Output[str]
    web_url: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        tenant_slug: pulumi.Input[str],
        quota_bytes: pulumi.Input[int],
        member_group: pulumi.Input[str],
        manager_group: pulumi.Input[str],
        enabled: pulumi.Input[bool] = True,
        tenant_status: pulumi.Input[str] = "active",
        purge: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
        provider: SpaceProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "tenant_slug": tenant_slug,
            "quota_bytes": quota_bytes,
            "member_group": member_group,
            "manager_group": manager_group,
            "enabled": enabled,
            "tenant_status": tenant_status,
            "purge": purge,
            "drive_id": None,
            "web_url": None,
        }
        super().__init__(provider or SpaceProvider(), resource_name, props, opts)
