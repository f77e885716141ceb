"""A dedicated server's membership in a Robot vSwitch, as a Pulumi dynamic resource.

The vSwitch itself (its VLAN, its end) is made in Robot by a person; this only attaches the
adopted server and detaches it when the resource goes. Robot attaches in the background (the
server shows ``in process``), so create and delete poll until it settles.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers._http import PermanentApiError, RetryableApiError, RetryPolicy
from components.providers._robot_client import SYSTEM, RobotClient
from components.providers.robot import RobotProvider, server_number_problem

__all__ = ["VSwitchAttachment", "VSwitchAttachmentProvider", "vswitch_id_problem"]

_VSWITCH_READY = "ready"
_VSWITCH_BUSY = "in process"


def vswitch_id_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return "must be the Robot vSwitch id (a positive integer)"
    return None if value > 0 else "must be the Robot vSwitch id (a positive integer)"


class VSwitchAttachmentProvider(RobotProvider):
    """One server's membership in one vSwitch (``/vswitch/{id}/server``).

    Robot attaches and detaches in the background: the server shows ``in process`` in
    ``GET /vswitch/{id}`` until it is ``ready`` (or gone), so create and delete poll up to
    ``apply_timeout``. A membership that is already ``ready`` is adopted without a write.
    """

    inputs = ("vswitch_id", "server_number")
    checks = (("vswitch_id", vswitch_id_problem), ("server_number", server_number_problem))
    replace_on = frozenset({"vswitch_id", "server_number"})

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

    def _changed(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        changed = [
            k
            for k in self.inputs
            if news.get(k) == UNKNOWN or _int(olds.get(k)) != _int(news.get(k))
        ]
        if olds.get("status") not in (None, _VSWITCH_READY):
            changed.append("status")  # detached or left half-done out of band: attach again
        return changed

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        vswitch, number = int(props["vswitch_id"]), int(props["server_number"])
        with self._client() as client:
            if client.get_server(number) is None:
                raise PermanentApiError(
                    SYSTEM,
                    f"server {number} is not in this Robot account; a person orders the server, "
                    "the stack only adopts it by number",
                )
            outs = self._attach(client, vswitch, number)
        return dynamic.CreateResult(f"{vswitch}/{number}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        vswitch, number = _attachment_id(id_)
        with self._client() as client:
            live = client.get_vswitch(vswitch)
        member = _member(live, number)
        if live is None or live.get("cancelled") or member is None:
            return self._read_result(id_, None)  # detached out of band: the engine drops it
        return self._read_result(id_, _vswitch_outs(live, member, vswitch, number))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        vswitch, number = int(news["vswitch_id"]), int(news["server_number"])
        with self._client() as client:
            return dynamic.UpdateResult(self._attach(client, vswitch, number))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        vswitch, number = _attachment_id(id_)
        with self._client() as client:
            live = self._settled(client, vswitch, number)
            if live is None or live.get("cancelled") or _member(live, number) is None:
                return None  # vSwitch or membership already gone: still a success
            client.remove_vswitch_server(vswitch, number)
            live = self._settled(client, vswitch, number)
            if live is not None and _member(live, number) is not None:
                raise PermanentApiError(
                    SYSTEM,
                    f"server {number} is still in vSwitch {vswitch} after the detach "
                    f"(status {_member(live, number)!r}); check it in Robot",
                )
        return None

    # --- helpers -------------------------------------------------------------------------

    def _attach(self, client: RobotClient, vswitch: int, number: int) -> dict[str, Any]:
        """Make the server a ``ready`` member of the vSwitch; write nothing if it is one."""
        live = self._settled(client, vswitch, number)
        if live is None or live.get("cancelled"):
            state = "cancelled" if live is not None else "not in this Robot account"
            raise PermanentApiError(
                SYSTEM,
                f"vSwitch {vswitch} is {state}; a person creates the vSwitch in Robot, "
                "the stack only attaches the server to it",
            )
        member = _member(live, number)
        if member == _VSWITCH_READY:
            return _vswitch_outs(live, member, vswitch, number)
        if member is not None:  # "failed": Robot could not attach it
            raise PermanentApiError(
                SYSTEM,
                f"server {number} is {member!r} in vSwitch {vswitch}; remove it from the "
                "vSwitch in Robot, then run again",
            )
        client.add_vswitch_server(vswitch, number)
        live = self._settled(client, vswitch, number)
        member = _member(live, number)
        if live is None or member != _VSWITCH_READY:
            raise PermanentApiError(
                SYSTEM,
                f"server {number} ended {member!r} in vSwitch {vswitch} after the attach; "
                "check it in Robot",
            )
        return _vswitch_outs(live, member, vswitch, number)

    def _settled(self, client: RobotClient, vswitch: int, number: int) -> dict[str, Any] | None:
        """The vSwitch once no server of it is ``in process`` (None: no such vSwitch)."""
        deadline = time.monotonic() + self.apply_timeout
        while True:
            live = client.get_vswitch(vswitch)
            busy = [
                s.get("server_number") for s in _servers(live) if s.get("status") == _VSWITCH_BUSY
            ]
            if not busy:
                return live
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = "it" if number in busy else f"servers {busy}"
                raise RetryableApiError(
                    SYSTEM,
                    f"vSwitch {vswitch} still 'in process' for {where} after "
                    f"{self.apply_timeout:g}s; the next run waits again",
                )
            time.sleep(min(self.poll_interval, remaining))


def _int(value: object) -> object:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _attachment_id(id_: str) -> tuple[int, int]:
    vswitch, _, number = id_.partition("/")
    return int(vswitch), int(number)


def _servers(live: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    servers = live.get("server") if live is not None else None
    return [s for s in servers if isinstance(s, Mapping)] if isinstance(servers, list) else []


def _member(live: Mapping[str, Any] | None, number: int) -> str | None:
    """The server's status in the vSwitch, or None if it is not in it."""
    for server in _servers(live):
        if _int(server.get("server_number")) == number:
            return str(server.get("status") or "")
    return None


def _vswitch_outs(
    live: Mapping[str, Any], status: str, vswitch: int, number: int
) -> dict[str, Any]:
    return {
        "vswitch_id": vswitch,
        "server_number": number,
        "status": status,
        "vlan": _int(live.get("vlan")),
        "name": str(live.get("name") or ""),
    }


class VSwitchAttachment(dynamic.Resource, module="robot", name="VSwitchAttachment"):
    """A dedicated server's membership in a Robot vSwitch (the vSwitch is made by a person).

    Removing the resource detaches the server from the vSwitch.
    """

    vswitch_id: pulumi.Output[int]
    server_number: pulumi.Output[int]
    status: pulumi.Output[str]
    vlan: pulumi.Output[int]
    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        vswitch_id: pulumi.Input[int],
        server_number: pulumi.Input[int],
        opts: pulumi.ResourceOptions | None = None,
        provider: VSwitchAttachmentProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "vswitch_id": vswitch_id,
            "server_number": server_number,
            "status": None,
            "vlan": None,
            "name": None,
        }
        super().__init__(provider or VSwitchAttachmentProvider(), resource_name, props, opts)
