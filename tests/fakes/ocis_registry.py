"""The object side of the fake OCIS: spaces, groups and space-root grants in memory.

Follows libregraph v1.0.4 and OCIS' graph service: strict JSON bodies, space-name rules,
``GRAPH_SPACES_DEFAULT_QUOTA``, disabled spaces listed with ``root.deleted.state == "trashed"``
and only ``quota.total``, purge refused on an enabled space, restore by ``Restore: T``, the
creator made Manager, grants on a space root with unified role ids and permission ids
``g:<groupId>`` / ``u:<userId>``, and odata errors. Not thread-safe: the server holds a lock.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

Json = dict[str, Any]
Answer = tuple[int, Json | None]

STORAGE = "storage-users-1"
DEFAULT_QUOTA = 1_000_000_000
ADMIN_ID = "some-admin-user-id-0000-000000000000"
# services/graph/pkg/unifiedrole/roles.go: the roles a space root accepts, and two file roles.
SPACE_ROLES = {
    "a8d5fe5e-96e3-418d-825b-534dbdf22b99": ("Can view", "viewer"),
    "58c63c02-1d89-4572-916a-870abc5a1b7d": ("Can edit", "editor"),
    "312c0871-5ef7-4b3a-85b6-0e4074c64049": ("Can manage", "manager"),
}
FILE_ROLES = {"b1e2218d-eef8-4d4c-b82d-0f1a1b48f3b5", "fb6c3e19-e378-47e5-b277-9732f9de6e21"}
MANAGER = "312c0871-5ef7-4b3a-85b6-0e4074c64049"
DRIVE_FIELDS = {
    "id", "createdBy", "createdDateTime", "description", "eTag", "lastModifiedBy",
    "lastModifiedDateTime", "name", "parentReference", "webUrl", "driveType", "driveAlias",
    "owner", "quota", "items", "root", "special",
}  # fmt: skip
_FORBIDDEN = '/\\.:?*"><|'
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FILTER = re.compile(r"^\s*(\w+)\s+(\w+)\s+'([^']*)'\s*$")


class GraphError(Exception):
    """An odata error answer: HTTP status, libregraph code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(UTC).isoformat()


def flag(headers: Any, name: str) -> bool:
    return str(headers.get(name, "")) in _TRUE


class Registry:
    """Spaces, groups and grants with the validation and error shapes of OCIS' graph service."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self.base_url = base_url
        self.drives: dict[str, Json] = {}
        self.groups: dict[str, Json] = {}
        self.page_size: int | None = None
        """Groups per page of ``GET /groups`` (None: one page), linked by ``@odata.nextLink``."""
        self.link_base: str | None = None
        """Where ``@odata.nextLink`` points (None: this server), to test a foreign link."""
        self._etags = itertools.count(1)
        personal = self._new_drive("Admin", "personal", DEFAULT_QUOTA, None, "personal/admin")
        self.drives[personal["id"]] = personal

    # --- test hooks ----------------------------------------------------------------------

    def add_group(self, name: str) -> str:
        group_id = str(uuid.uuid4())
        self.groups[group_id] = {"id": group_id, "displayName": name}
        return group_id

    def group_id(self, name: str) -> str | None:
        return next((g for g, v in self.groups.items() if v["displayName"] == name), None)

    def projects(self) -> list[Json]:
        return [d for d in self.drives.values() if d["type"] == "project"]

    def grants(self, drive_id: str) -> dict[str, str]:
        """``{group display name or user id: role id}`` on a space root."""
        out = {}
        for grant in self.drives[drive_id]["grants"].values():
            who = self.groups.get(grant["id"], {}).get("displayName", grant["id"])
            out[who] = grant["role"]
        return out

    # --- routing -------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: Any
    ) -> Answer:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        match (method, parts):
            case ("GET", ["graph", "v1.0", "drives"]):
                return 200, {"value": self._list(query, mine=False)}
            case ("GET", ["graph", "v1.0", "me", "drives"]):
                return 200, {"value": self._list(query, mine=True)}
            case ("POST", ["graph", "v1.0", "drives"]):
                return 201, self._create(body)
            case ("GET", ["graph", "v1.0", "drives", drive_id]):
                return 200, self.view(self._drive(drive_id))
            case ("PATCH", ["graph", "v1.0", "drives", drive_id]):
                return 200, self._update(drive_id, body, flag(headers, "Restore"))
            case ("DELETE", ["graph", "v1.0", "drives", drive_id]):
                return self._delete(drive_id, flag(headers, "Purge"))
            case ("GET", ["graph", "v1.0", "groups"]):
                return 200, self._groups(query)
            case ("POST", ["graph", "v1.0", "groups"]):
                return 201, self._create_group(body)
            case ("GET", ["graph", "v1beta1", "drives", drive_id, "root", "permissions"]):
                return 200, self._permissions(drive_id)
            case ("POST", ["graph", "v1beta1", "drives", drive_id, "root", "invite"]):
                return 200, {"value": [self._invite(drive_id, body)]}
            case ("PATCH", ["graph", "v1beta1", "drives", drive_id, "root", "permissions", perm]):
                return 200, self._set_role(drive_id, perm, body)
            case ("DELETE", ["graph", "v1beta1", "drives", drive_id, "root", "permissions", perm]):
                self._grant(drive_id, perm)
                del self.drives[drive_id]["grants"][perm]
                return 204, None
        raise GraphError(404, "itemNotFound", f"no route for {method} {path}")

    # --- drives --------------------------------------------------------------------------

    def _new_drive(
        self, name: str, kind: str, quota: int, description: str | None, alias: str | None
    ) -> Json:
        space = str(uuid.uuid4())
        return {
            "id": f"{STORAGE}${space}", "space": space, "type": kind, "name": name,
            "description": description, "alias": alias, "quota": quota, "used": 0,
            "disabled": False, "mtime": _now(), "etag": next(self._etags),
            "grants": {f"u:{ADMIN_ID}": {"kind": "user", "id": ADMIN_ID, "role": MANAGER}},
        }  # fmt: skip

    def view(self, d: Json) -> Json:
        """The libregraph ``drive`` as ``GET /graph/v1.0/drives/{id}`` renders it."""
        base = self.base_url()
        root: Json = {
            "id": d["id"],
            "eTag": f'"{d["etag"]:032x}"',
            "webDavUrl": f"{base}/dav/spaces/{d['id']}",
            "permissions": [self._legacy_permission(g) for g in d["grants"].values()],
        }
        quota: Json = {"total": d["quota"]}
        if d["disabled"]:
            root["deleted"] = {"state": "trashed"}
        else:
            used, total = d["used"], d["quota"]
            percent = used / total * 100 if total else 0
            state = "normal" if percent <= 75 else "nearing" if percent <= 90 else "critical"
            quota.update(used=used, remaining=max(total - used, 0), state=state)
        view: Json = {
            "id": d["id"], "driveType": d["type"], "name": d["name"],
            "owner": {"user": {"displayName": "", "id": d["space"]}}, "quota": quota,
            "root": root, "webUrl": f"{base}/f/{d['id']}", "lastModifiedDateTime": d["mtime"],
        }  # fmt: skip
        if d["description"] is not None:
            view["description"] = d["description"]
        if d["alias"] is not None:
            view["driveAlias"] = d["alias"]
        return view

    def _drive(self, drive_id: str) -> Json:
        drive = self.drives.get(drive_id)
        if drive is None:
            raise GraphError(404, "itemNotFound", f"no drive returned from storage: {drive_id}")
        return drive

    def _list(self, query: dict[str, str], *, mine: bool) -> list[Json]:
        drives = list(self.drives.values())
        if "$filter" in query:
            match = _FILTER.match(query["$filter"])
            if match is None:
                raise GraphError(400, "invalidRequest", "query error: invalid $filter")
            prop, op, value = match.groups()
            if op != "eq":
                raise GraphError(501, "notSupported", f"unsupported filter operand: {op}")
            key = {"driveType": "type", "id": "id"}.get(prop)
            drives = [d for d in drives if key is None or d[key] == value]
        if mine:
            drives = [d for d in drives if f"u:{ADMIN_ID}" in d["grants"]]
        return [self.view(d) for d in drives]

    def _create(self, body: Any) -> Json:
        body = _strict(body, DRIVE_FIELDS, "invalid body schema definition")
        name = _space_name(body.get("name"), 400, "invalidRequest")
        if body.get("driveType", "project") not in ("", "project"):
            raise GraphError(
                400, "invalidRequest", "drives of this type cannot be created via this api"
            )
        quota = _quota(body.get("quota")) if body.get("quota") is not None else None
        # OCIS' default alias template: {{.SpaceType}}/{{.SpaceName | replace " " "-" | lower}}
        alias = body.get("driveAlias") or f"project/{name.lower().replace(' ', '-')}"
        quota = DEFAULT_QUOTA if quota is None else quota
        drive = self._new_drive(name, "project", quota, body.get("description"), alias)
        self.drives[drive["id"]] = drive
        return self.view(drive)

    def _update(self, drive_id: str, body: Any, restore: bool) -> Json:
        body = _strict(body, DRIVE_FIELDS, "invalid request body")
        drive = self._drive(drive_id)
        if body.get("name"):
            drive["name"] = _space_name(body["name"], 400, "generalException")
        if body.get("quota") is not None:
            total = _quota(body["quota"])
            if total is not None:
                drive["quota"] = total
        for key, field in (("description", "description"), ("driveAlias", "alias")):
            if key in body:
                drive[field] = body[key]
        if restore:
            drive["disabled"] = False
        drive["mtime"], drive["etag"] = _now(), next(self._etags)
        return self.view(drive)

    def _delete(self, drive_id: str, purge: bool) -> Answer:
        drive = self._drive(drive_id)
        if drive["type"] == "personal":
            raise GraphError(405, "notAllowed", "drive cannot be deleted")
        if purge:
            if not drive["disabled"]:
                raise GraphError(
                    400, "invalidRequest", "error: bad request: can't purge enabled space"
                )
            del self.drives[drive_id]
        else:
            drive["disabled"] = True
        return 204, None

    # --- groups and grants ---------------------------------------------------------------

    def _groups(self, query: dict[str, str]) -> Json:
        term = query.get("$search", "").strip('"').lower()
        found = [dict(g) for g in self.groups.values() if term in g["displayName"].lower()]
        if self.page_size is None:
            return {"value": found}
        start = int(query.get("$skiptoken", "0"))
        page: Json = {"value": found[start : start + self.page_size]}
        if start + self.page_size < len(found):
            rest = urlencode({**query, "$skiptoken": start + self.page_size})
            page["@odata.nextLink"] = (
                f"{self.link_base or self.base_url()}/graph/v1.0/groups?{rest}"
            )
        return page

    def _create_group(self, body: Any) -> Json:
        body = _strict(
            body, {"id", "displayName", "description", "members@odata.bind"}, "invalid request body"
        )
        if "id" in body:
            raise GraphError(400, "invalidRequest", "id is a read-only attribute")
        name = body.get("displayName")
        if not isinstance(name, str) or not name:
            raise GraphError(400, "invalidRequest", "missing Attribute displayName")
        if self.group_id(name):
            raise GraphError(409, "nameAlreadyExists", f"group {name!r} already exists")
        return dict(self.groups[self.add_group(name)])

    def _space_root(self, drive_id: str) -> Json:
        drive = self._drive(drive_id)
        if drive["disabled"]:
            raise GraphError(404, "itemNotFound", "drive not found")  # modelled guess
        return drive

    def _permissions(self, drive_id: str) -> Json:
        drive = self._space_root(drive_id)
        return {
            "@libre.graph.permissions.roles.allowedValues": [
                {"id": rid, "displayName": name, "@libre.graph.weight": n}
                for n, (rid, (name, _)) in enumerate(SPACE_ROLES.items(), 1)
            ],
            "value": [self._permission(pid, g) for pid, g in drive["grants"].items()],
        }

    def _invite(self, drive_id: str, body: Any) -> Json:
        body = _strict(
            body,
            {"recipients", "roles", "expirationDateTime", "@libre.graph.permissions.actions"},
            "invalid body",
        )
        drive = self._space_root(drive_id)
        if drive["type"] != "project":
            raise GraphError(400, "invalidRequest", "unsupported space type")
        recipients, roles = body.get("recipients"), body.get("roles")
        if (
            not isinstance(recipients, list)
            or len(recipients) != 1
            or not isinstance(recipients[0], dict)
        ):
            raise GraphError(400, "invalidRequest", "exactly one recipient is supported")
        role = _space_role(roles)
        kind = recipients[0].get("@libre.graph.recipient.type", "user")
        oid = recipients[0].get("objectId")
        if kind != "group" or oid not in self.groups:
            raise GraphError(400, "invalidRequest", f"unknown recipient {kind} {oid!r}")
        perm_id = f"g:{oid}"
        if perm_id in drive["grants"]:
            raise GraphError(409, "nameAlreadyExists", "error: already exists: grant exists")
        drive["grants"][perm_id] = {"kind": "group", "id": oid, "role": role}
        return self._permission(perm_id, drive["grants"][perm_id])

    def _set_role(self, drive_id: str, perm_id: str, body: Any) -> Json:
        body = _strict(body, {"roles", "expirationDateTime"}, "invalid body")
        grant = self._grant(drive_id, perm_id)
        grant["role"] = _space_role(body.get("roles"))
        return self._permission(perm_id, grant)

    def _grant(self, drive_id: str, perm_id: str) -> Json:
        grant = self._space_root(drive_id)["grants"].get(perm_id)
        if grant is None:
            raise GraphError(404, "itemNotFound", f"permission {perm_id} not found")
        return grant  # type: ignore[no-any-return]

    def _permission(self, perm_id: str, grant: Json) -> Json:
        name = self.groups.get(grant["id"], {}).get("displayName", "")
        who = {"id": grant["id"], "displayName": name}
        return {"id": perm_id, "roles": [grant["role"]], "grantedToV2": {grant["kind"]: who}}

    def _legacy_permission(self, grant: Json) -> Json:
        who = {
            "id": grant["id"],
            "displayName": self.groups.get(grant["id"], {}).get("displayName", ""),
        }
        return {
            "grantedToIdentities": [{grant["kind"]: who}],
            "roles": [SPACE_ROLES[grant["role"]][1]],
        }


def _strict(body: Any, allowed: set[str], message: str) -> Json:
    """OCIS decodes bodies with DisallowUnknownFields: an unknown key is a 400."""
    if not isinstance(body, dict) or set(body) - allowed:
        raise GraphError(400, "invalidRequest", message)
    return body


def _space_name(value: Any, status: int, code: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise GraphError(status, code, "invalid spacename: spacename must not be empty")
    if len(name) > 255:
        raise GraphError(status, code, "invalid spacename: spacename must be smaller than 255")
    if any(c in name for c in _FORBIDDEN):
        raise GraphError(
            status, code, 'invalid spacename: spacenames must not contain [/ \\ . : ? * " > < |]'
        )
    return name


def _quota(value: Any) -> int | None:
    total = value.get("total") if isinstance(value, dict) else None
    if total is None:
        return None
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise GraphError(400, "invalidRequest", "invalid request body: quota.total")
    return total


def _space_role(roles: Any) -> str:
    if not isinstance(roles, list) or len(roles) != 1:
        raise GraphError(400, "invalidRequest", "exactly one role is supported")
    if roles[0] in FILE_ROLES:
        raise GraphError(400, "invalidRequest", "role not applicable to this resource")
    if roles[0] not in SPACE_ROLES:
        raise GraphError(400, "invalidRequest", "role not available")
    return str(roles[0])
