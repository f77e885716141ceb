"""OCIS libregraph over HTTP: project drives (spaces), groups and space-root permissions.

Endpoints and shapes follow ``owncloud/libre-graph-api`` ``v1.0.yaml`` and OCIS'
``docs/apis/http/graph/spaces.md``: drives under ``/graph/v1.0``, permissions and invites under
``/graph/v1beta1`` (unified role ids). Odata error bodies
(``{"error": {"code", "message", "innererror"}}``) become ``OdataError`` (permanent) or a
``RetryableApiError`` whose text names the odata code; every message starts with ``ocis: ``.

``Purge: T`` and ``Restore: T`` are per-request headers of ``VendorClient.request``. The error
body is not offered by ``_http.VendorClient`` (it raises before we see the response): the odata
code and message are recovered from the redacted excerpt that ``ApiError.message`` carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from components.providers._http import (
    ApiError,
    PermanentApiError,
    RetryableApiError,
    TokenClient,
    VendorClient,
)

SYSTEM = "ocis"
# Unified role ids for space roots (services/graph/pkg/unifiedrole/roles.go; libregraph spec
# example "send manager invite to group"). Only ids in GRAPH_AVAILABLE_ROLES are accepted.
SPACE_VIEWER = "a8d5fe5e-96e3-418d-825b-534dbdf22b99"
SPACE_EDITOR = "58c63c02-1d89-4572-916a-870abc5a1b7d"
SPACE_MANAGER = "312c0871-5ef7-4b3a-85b6-0e4074c64049"

_NAME_FORBIDDEN = '/\\.:?*"<>|'  # services/graph validateSpaceName
_DRIVES = "/graph/v1.0/drives"
_GROUPS = "/graph/v1.0/groups"
_ROOT = "/graph/v1beta1/drives/{drive}/root"
# "<status> <reason>: <METHOD> <path>: <body excerpt>", as VendorClient words HTTP errors.
_HTTP_ERROR = re.compile(r"^(\d{3} [^:]*: [A-Z]+ \S+): (.*)$", re.S)
_ODATA_CODE = re.compile(r'"code"\s*:\s*"([^"]*)"')
_ODATA_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)')


class OdataError(PermanentApiError):
    """OCIS refused a request with an odata error; ``code`` is its libregraph error code."""

    def __init__(
        self, message: str, *, code: str, status: int | None, secrets: Sequence[str] = ()
    ) -> None:
        super().__init__(SYSTEM, message, status=status, secrets=secrets)
        self.code = code


class OcisClient(TokenClient):
    """Typed client for the libregraph endpoints the space provider needs."""

    system = SYSTEM

    # --- drives --------------------------------------------------------------------------

    def list_project_drives(self) -> list[dict[str, Any]]:
        """All project spaces, disabled ones included (needs the Space Admin/Admin role)."""
        query = httpx.QueryParams({"$filter": "driveType eq 'project'"})
        return list(self._pages(f"{_DRIVES}?{query}", "list drives"))

    def get_drive(self, drive_id: str) -> dict[str, Any] | None:
        """The drive, or None when OCIS does not know it (also how it answers "not allowed")."""
        try:
            return self._json("GET", f"{_DRIVES}/{_seg(drive_id)}", "get drive")
        except PermanentApiError as err:
            if err.status == 404:
                return None
            raise

    def create_drive(
        self, name: str, quota_total: int, description: str, alias: str
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "driveType": "project",
            "description": description,
            "driveAlias": alias,
            "quota": {"total": quota_total},
        }
        return self._json("POST", _DRIVES, "create drive", body)

    def update_drive(self, drive_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        # A PATCH of a drive sets the given properties: resending it is harmless.
        url = f"{_DRIVES}/{_seg(drive_id)}"
        return self._json("PATCH", url, "update drive", dict(patch), idempotent=True)

    def disable_drive(self, drive_id: str) -> bool:
        """Disable (soft-delete) a space; False when it does not exist."""
        return self._delete(f"{_DRIVES}/{_seg(drive_id)}")

    def restore_drive(self, drive_id: str) -> dict[str, Any]:
        """Re-enable a disabled space (``PATCH`` with ``Restore: T`` and an empty object)."""
        url = f"{_DRIVES}/{_seg(drive_id)}"
        return self._json("PATCH", url, "restore drive", {}, idempotent=True, flag="Restore")

    def purge_drive(self, drive_id: str) -> bool:
        """Delete a disabled space and its files for good; False when it does not exist."""
        return self._delete(f"{_DRIVES}/{_seg(drive_id)}", flag="Purge")

    # --- groups --------------------------------------------------------------------------

    def find_group(self, display_name: str) -> dict[str, Any] | None:
        """The group with exactly this display name (``$search`` is a substring match)."""
        query = httpx.QueryParams({"$search": f'"{display_name}"'})
        for group in self._pages(f"{_GROUPS}?{query}", "list groups"):
            if group.get("displayName") == display_name:
                return group
        return None

    def create_group(self, display_name: str) -> dict[str, Any]:
        """Needs a writable identity backend (OCIS' built-in IDM or writable LDAP)."""
        return self._json("POST", _GROUPS, "create group", {"displayName": display_name})

    # --- space-root permissions ----------------------------------------------------------

    def list_root_permissions(self, drive_id: str) -> list[dict[str, Any]]:
        url = f"{_ROOT.format(drive=_seg(drive_id))}/permissions"
        data = self._json("GET", url, "list permissions")
        return [p for p in data.get("value") or [] if isinstance(p, dict)]

    def invite_group(self, drive_id: str, group_id: str, role_id: str) -> dict[str, Any]:
        body = {
            "recipients": [{"objectId": group_id, "@libre.graph.recipient.type": "group"}],
            "roles": [role_id],
        }
        data = self._json("POST", f"{_ROOT.format(drive=_seg(drive_id))}/invite", "invite", body)
        created = data.get("value") or []
        if not created or not isinstance(created[0], dict):
            raise self._http.permanent("invite: the response holds no permission")
        return dict(created[0])

    def set_permission_role(self, drive_id: str, permission_id: str, role_id: str) -> None:
        url = f"{_ROOT.format(drive=_seg(drive_id))}/permissions/{_seg(permission_id)}"
        self._json("PATCH", url, "update permission", {"roles": [role_id]}, idempotent=True)

    def remove_permission(self, drive_id: str, permission_id: str) -> bool:
        url = f"{_ROOT.format(drive=_seg(drive_id))}/permissions/{_seg(permission_id)}"
        return self._delete(url)

    # --- plumbing ------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        url: str,
        what: str,
        body: Any = None,
        *,
        idempotent: bool | None = None,
        flag: str | None = None,
    ) -> dict[str, Any]:
        response = self._send(method, url, body, idempotent=idempotent, flag=flag)
        return _object(self._http, response, what)

    def _pages(self, url: str, what: str) -> Iterator[dict[str, Any]]:
        """Items of a collection, following ``@odata.nextLink`` (OCIS may answer ``null``)."""
        next_url: str | None = url
        while next_url:
            response = self._send("GET", next_url, None)
            data = _object(self._http, response, what, empty={})
            yield from (item for item in data.get("value") or [] if isinstance(item, dict))
            link = data.get("@odata.nextLink")
            next_url = link if isinstance(link, str) and link else None
            # The bearer token goes with every request: never follow a link to another host.
            base = self._http.base_url
            if next_url and _origin(base.join(next_url)) != _origin(base):
                raise self._http.permanent(f"{what}: @odata.nextLink leaves {base.host}")

    def _delete(self, url: str, flag: str | None = None) -> bool:
        try:
            self._send("DELETE", url, None, flag=flag)
        except PermanentApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def _send(
        self,
        method: str,
        url: str,
        body: Any,
        *,
        idempotent: bool | None = None,
        flag: str | None = None,
    ) -> httpx.Response:
        """One request; ``flag`` names an OCIS flag header sent as ``<flag>: T``."""
        headers = {flag: "T"} if flag else None
        try:
            return self._http.request(
                method, url, json=body, headers=headers, idempotent=idempotent
            )
        except ApiError as err:
            worded = _with_odata(err, self._http.secrets)
            if worded is err:
                raise
            raise worded from err


# --- reading libregraph shapes -------------------------------------------------------


def space_name(display_name: str) -> str:
    """A name OCIS accepts for ``display_name``: refused characters become spaces."""
    cleaned = "".join(" " if c in _NAME_FORBIDDEN else c for c in display_name)
    return " ".join(cleaned.split())[:255].strip()


def space_name_problem(value: object) -> str | None:
    """Why OCIS would refuse ``value`` as a space name, or None."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        return "must be a space name of 1 to 255 characters"
    if value != value.strip():
        return "must not start or end with whitespace (OCIS trims it: endless drift)"
    bad = sorted({c for c in value if c in _NAME_FORBIDDEN})
    if bad:
        return f"must not contain {' '.join(bad)} (refused by OCIS)"
    return None


def grants_by_group(permissions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Space-root permissions by the id of the group they were granted to."""
    found: dict[str, dict[str, Any]] = {}
    for perm in permissions:
        granted = perm.get("grantedToV2")
        group = granted.get("group") if isinstance(granted, dict) else None
        if isinstance(group, dict) and group.get("id"):
            found[str(group["id"])] = perm
    return found


def is_enabled(drive: dict[str, Any]) -> bool:
    """Disabled spaces carry ``root.deleted.state == "trashed"``."""
    root = drive.get("root")
    return not (isinstance(root, dict) and isinstance(root.get("deleted"), dict))


def quota_total(drive: dict[str, Any]) -> int:
    quota = drive.get("quota")
    total = quota.get("total") if isinstance(quota, dict) else None
    return int(total) if isinstance(total, int | float) and not isinstance(total, bool) else 0


def _with_odata(err: ApiError, secrets: Sequence[str]) -> ApiError:
    """The same failure, worded with the odata ``code: message`` instead of raw JSON."""
    match = _HTTP_ERROR.match(err.message)
    code = _ODATA_CODE.search(match.group(2)) if match else None
    if match is None or code is None:
        return err
    text = f"{match.group(1)}: {code.group(1)}"
    message = _ODATA_MESSAGE.search(match.group(2))
    if message:
        text += f": {_unescape(message.group(1))}"
    if isinstance(err, RetryableApiError):
        return RetryableApiError(
            SYSTEM, text, status=err.status, secrets=secrets, retry_after=err.retry_after
        )
    return OdataError(text, code=code.group(1), status=err.status, secrets=secrets)


def _unescape(text: str) -> str:
    try:
        return str(json.loads(f'"{text}"'))
    except ValueError:  # cut inside an escape sequence
        return text


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _seg(value: str) -> str:
    """One path segment; OCIS ids hold ``$``, ``!`` and ``:``, which may stay as they are."""
    return quote(value, safe="$!:@")


def _object(
    http: VendorClient, response: httpx.Response, what: str, empty: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON object in ``response``; ``empty`` stands in for a ``null`` or empty body."""
    data = http.json_value(response, what) if response.content.strip() else None
    if data is None and empty is not None:
        return empty
    return http.as_object(data, what)
