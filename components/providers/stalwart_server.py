"""The Stalwart server's own settings as Pulumi dynamic resources: certificate, listeners, defaults.

In Stalwart 0.16 these live in the datastore as JMAP registry objects, not in a file:

* ``StalwartCertificate`` -- an ``x:Certificate`` whose ``certificate`` (``x:PublicText``) and
  ``privateKey`` (``x:SecretText``) are both the ``File`` variant (``{"@type": "File",
  "filePath": ...}``): Stalwart reads the PEM files on the host, so no key material passes
  through Pulumi. An ``x:Certificate`` has no name, so an existing one is adopted when its
  certificate file path is ours.
* ``StalwartListener`` -- an ``x:NetworkListener``: ``name`` (unique, ``immutable`` in the
  schema, so a rename is a replace), ``bind`` (set of socket addresses), ``protocol``,
  ``useTls`` and ``tlsImplicit`` (all ``mutable``: a protocol change is an update).
* ``StalwartSettings`` -- ``defaultHostname`` and ``defaultCertificateId`` of the
  ``x:SystemSettings`` singleton (id ``singleton``). It cannot be created or destroyed: create
  writes the two values, delete leaves the server's settings as they are.

Same client, credentials and error mapping as the domain provider (``stalwart.py``): stack
config ``stalwart:url`` / ``stalwart:token``, errors ``stalwart: ...`` with SetErrors as
``StalwartSetError``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pulumi
from pulumi import dynamic

from components.providers._base import TokenProvider, known_problems
from components.providers._http import PermanentApiError
from components.providers._stalwart_jmap import SINGLETON, SYSTEM, StalwartClient, StalwartSetError
from components.providers.stalwart import fqdn_problem

__all__ = [
    "PROTOCOLS",
    "CertificateProvider",
    "ListenerProvider",
    "SettingsProvider",
    "StalwartCertificate",
    "StalwartListener",
    "StalwartSettings",
    "bind_problem",
    "path_problem",
]

# Enum NetworkListenerProtocol of the registry schema.
PROTOCOLS = frozenset({"smtp", "lmtp", "http", "imap", "pop3", "manageSieve"})
_CERT_PROPS = ("certificate", "privateKey", "subjectAlternativeNames", "notValidAfter", "issuer")
_LISTENER_PROPS = ("name", "bind", "protocol", "useTls", "tlsImplicit")
_SETTINGS_PROPS = ("defaultHostname", "defaultCertificateId")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PATH_RE = re.compile(r"^/[^\x00\r\n]*[^/\x00\r\n]$")
_SOCKET_RE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


# --- input checks ------------------------------------------------------------------------


def path_problem(value: object) -> str | None:
    """Why ``value`` is not an absolute file path on the host, or None if it is one."""
    if not isinstance(value, str) or not _PATH_RE.match(value) or "/../" in f"{value}/":
        return "must be an absolute file path on the mail host, such as /etc/stalwart/tls/x.pem"
    return None


def listener_name_problem(value: object) -> str | None:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        return "must be 1-63 of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit"
    return None


def bind_problem(value: object) -> str | None:
    """Why ``value`` is not a non-empty list of socket addresses (``[::]:25``, ``0.0.0.0:25``)."""
    if not isinstance(value, list | tuple) or not value:
        return "must be a non-empty list of socket addresses such as '[::]:25'"
    for item in value:
        match = _SOCKET_RE.match(item) if isinstance(item, str) else None
        if match is None or not _is_ip(match["v6"] or match["v4"], v6=bool(match["v6"])):
            return f"{item!r} is not a socket address such as '[::]:25' or '192.0.2.1:25'"
        if not 1 <= int(match["port"]) <= 65535:
            return f"{item!r}: the port must be 1 to 65535"
    return None


def _is_ip(text: str, *, v6: bool) -> bool:
    try:
        ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def protocol_problem(value: object) -> str | None:
    if value not in PROTOCOLS:
        return f"must be one of {', '.join(sorted(PROTOCOLS))}"
    return None


def bool_problem(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def object_id_problem(value: object) -> str | None:
    if not isinstance(value, str) or not _ID_RE.match(value):
        return "must be the id of a Stalwart object"
    return None


# --- providers ---------------------------------------------------------------------------


class _ServerProvider(TokenProvider[StalwartClient]):
    system = SYSTEM
    product = "Stalwart"
    client_type = StalwartClient


class CertificateProvider(_ServerProvider):
    """CRUD for an ``x:Certificate`` read by Stalwart from PEM files on the host."""

    inputs = ("certificate_path", "private_key_path")
    checks = (("certificate_path", path_problem), ("private_key_path", path_problem))
    stables = ("certificate_id",)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        with self._client() as client:
            cert_id = self._find(client, str(props["certificate_path"]))
            if cert_id is None:
                cert_id = client.create_object("Certificate", _certificate_props(props))
            else:
                self._converge(client, cert_id, props)
            outs = self._observe(client, cert_id, props)
        if outs is None:
            raise PermanentApiError(
                SYSTEM, f"certificate {cert_id!r} vanished while it was created"
            )
        return dynamic.CreateResult(cert_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            return self._read_result(id_, self._observe(client, id_, props))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        with self._client() as client:
            self._converge(client, id_, news)
            outs = self._observe(client, id_, news)
        if outs is None:
            raise PermanentApiError(SYSTEM, f"certificate {id_!r} vanished during the update")
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        # objectIsLinked while x:SystemSettings.defaultCertificateId still names it: raised.
        with self._client() as client:
            client.destroy_object("Certificate", id_)

    def _find(self, client: StalwartClient, certificate_path: str) -> str | None:
        """The certificate read from ``certificate_path`` (lowest id if several), or None."""
        ids = client.certificate_ids()
        found = client.get("Certificate", ids, ["certificate"]) if ids else []
        matches = sorted(
            (str(c["id"]) for c in found if _file_path(c.get("certificate")) == certificate_path),
            key=lambda i: (len(i), i),
        )
        return matches[0] if matches else None

    def _converge(self, client: StalwartClient, cert_id: str, props: dict[str, Any]) -> None:
        live = client.get_one("Certificate", cert_id, ["certificate", "privateKey"])
        if live is None:
            raise PermanentApiError(SYSTEM, f"certificate {cert_id!r} does not exist")
        wanted = _certificate_props(props)
        patch = {k: v for k, v in wanted.items() if k in live and live[k] != v}
        # A server that does not show the private key's source: write it, the paths may differ.
        if "privateKey" not in live:
            patch["privateKey"] = wanted["privateKey"]
        client.update_object("Certificate", cert_id, patch)

    def _observe(
        self, client: StalwartClient, cert_id: str, props: dict[str, Any]
    ) -> dict[str, Any] | None:
        live = client.get_one("Certificate", cert_id, _CERT_PROPS)
        if live is None:
            return None
        key_path = _file_path(live.get("privateKey"))
        return {
            "certificate_path": _file_path(live.get("certificate")) or "",
            # Not shown by the server: what we last wrote (it accepted that).
            "private_key_path": key_path if key_path is not None else props.get("private_key_path"),
            "certificate_id": cert_id,
            "subject_alternative_names": sorted(live.get("subjectAlternativeNames") or {}),
            "not_valid_after": live.get("notValidAfter"),
            "issuer": live.get("issuer"),
        }


class ListenerProvider(_ServerProvider):
    """CRUD for an ``x:NetworkListener``; ``name`` is immutable upstream, so a rename replaces."""

    inputs = ("name", "bind", "protocol", "use_tls", "tls_implicit")
    checks = (
        ("name", listener_name_problem),
        ("bind", bind_problem),
        ("protocol", protocol_problem),
        ("use_tls", bool_problem),
        ("tls_implicit", bool_problem),
    )
    replace_on = frozenset({"name"})
    stables = ("listener_id",)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        problems = known_problems(news, self.checks)
        if news.get("tls_implicit") is True and news.get("use_tls") is False:
            problems.append(("tls_implicit", "implicit TLS needs use_tls"))
        inputs = dict(news)
        bind = inputs.get("bind")
        if isinstance(bind, list) and all(isinstance(b, str) for b in bind):
            inputs["bind"] = sorted(set(bind))  # a set upstream: order never a diff
        return dynamic.CheckResult(inputs, [dynamic.CheckFailure(k, r) for k, r in problems])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        name = str(props["name"])
        with self._client() as client:
            listener_id = client.find_listener(name)
            if listener_id is None:
                listener_id = self._create(client, props)
            self._converge(client, listener_id, props)
            outs = self._observe(client, listener_id)
        if outs is None:
            raise PermanentApiError(SYSTEM, f"listener {name!r} vanished while it was created")
        return dynamic.CreateResult(listener_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            return self._read_result(id_, self._observe(client, id_))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        with self._client() as client:
            self._converge(client, id_, news)
            outs = self._observe(client, id_)
        if outs is None:
            raise PermanentApiError(SYSTEM, f"listener {news['name']!r} vanished during the update")
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        with self._client() as client:
            client.destroy_object("NetworkListener", id_)

    def _create(self, client: StalwartClient, props: dict[str, Any]) -> str:
        try:
            return client.create_object("NetworkListener", _listener_props(props))
        except StalwartSetError as err:
            # Lost a race with another create of the same name: adopt that one.
            found = None
            if err.set_type == "primaryKeyViolation":
                found = client.find_listener(str(props["name"]))
            if found is None:
                raise
            return found

    def _converge(self, client: StalwartClient, listener_id: str, props: dict[str, Any]) -> None:
        """Patch what differs from ``props``; write nothing when the listener already matches."""
        live = client.get_one("NetworkListener", listener_id, _LISTENER_PROPS)
        if live is None:
            raise PermanentApiError(SYSTEM, f"listener {props['name']!r} does not exist")
        if live.get("name") != props["name"]:
            raise PermanentApiError(
                SYSTEM,
                f"listener {listener_id!r} is called {live.get('name')!r}, not "
                f"{props['name']!r}; a listener's name cannot change (replace it)",
            )
        wanted = _listener_props(props)
        patch = {k: v for k, v in wanted.items() if k != "name" and _live(live, k) != v}
        client.update_object("NetworkListener", listener_id, patch)

    def _observe(self, client: StalwartClient, listener_id: str) -> dict[str, Any] | None:
        live = client.get_one("NetworkListener", listener_id, _LISTENER_PROPS)
        if live is None:
            return None
        return {
            "name": live.get("name"),
            "bind": sorted(live.get("bind") or {}),
            "protocol": _live(live, "protocol"),
            "use_tls": _live(live, "useTls"),
            "tls_implicit": _live(live, "tlsImplicit"),
            "listener_id": listener_id,
        }


class SettingsProvider(_ServerProvider):
    """``defaultHostname`` and ``defaultCertificateId`` of the ``x:SystemSettings`` singleton.

    The singleton always exists and cannot be destroyed (SetError ``forbidden``): create
    writes the wanted values, delete leaves the server's settings as they are (forgetting the
    resource must not take the server's hostname or certificate away).
    """

    inputs = ("default_hostname", "default_certificate_id")
    checks = (
        ("default_hostname", fqdn_problem),
        ("default_certificate_id", object_id_problem),
    )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        with self._client() as client:
            self._converge(client, props)
            outs = self._observe(client)
        return dynamic.CreateResult(SINGLETON, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            return self._read_result(SINGLETON, self._observe(client))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        with self._client() as client:
            self._converge(client, news)
            return dynamic.UpdateResult(self._observe(client))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        """Leave the settings: the singleton cannot be removed and stays in use."""

    def _converge(self, client: StalwartClient, props: dict[str, Any]) -> None:
        live = client.get_singleton("SystemSettings", _SETTINGS_PROPS)
        wanted = {
            "defaultHostname": props["default_hostname"],
            "defaultCertificateId": props["default_certificate_id"],
        }
        patch = {k: v for k, v in wanted.items() if live.get(k) != v}
        try:
            client.update_singleton("SystemSettings", patch)
        except StalwartSetError as err:
            if err.set_type != "invalidForeignKey":
                raise
            raise PermanentApiError(
                SYSTEM,
                f"default certificate {props['default_certificate_id']!r} does not exist "
                f"in Stalwart ({err.message})",
            ) from err

    def _observe(self, client: StalwartClient) -> dict[str, Any]:
        live = client.get_singleton("SystemSettings", _SETTINGS_PROPS)
        return {
            "default_hostname": live.get("defaultHostname"),
            "default_certificate_id": live.get("defaultCertificateId"),
        }


# --- wire shapes -------------------------------------------------------------------------


def _file(path: str) -> dict[str, str]:
    return {"@type": "File", "filePath": path}


def _file_path(value: object) -> str | None:
    """The path of a ``File`` text variant; "" for another variant; None when not shown."""
    if not isinstance(value, dict):
        return None
    if value.get("@type") != "File":
        return ""
    return str(value.get("filePath") or "")


def _certificate_props(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "certificate": _file(str(props["certificate_path"])),
        "privateKey": _file(str(props["private_key_path"])),
    }


def _listener_props(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": str(props["name"]),
        "bind": dict.fromkeys(sorted(props["bind"]), True),
        "protocol": str(props["protocol"]),
        "useTls": bool(props["use_tls"]),
        "tlsImplicit": bool(props["tls_implicit"]),
    }


# Schema defaults of x:NetworkListener for properties a server may leave out of a get.
_LISTENER_DEFAULTS: dict[str, Any] = {"protocol": "smtp", "useTls": True, "tlsImplicit": False}


def _live(live: dict[str, Any], key: str) -> Any:
    value = live.get(key)
    return _LISTENER_DEFAULTS.get(key) if value is None else value


# --- resources ---------------------------------------------------------------------------


class StalwartCertificate(dynamic.Resource, module="stalwart", name="Certificate"):
    """A TLS certificate Stalwart reads from PEM files on its host (``x:Certificate``)."""

    certificate_path: pulumi.Output[str]
    private_key_path: pulumi.Output[str]
    certificate_id: pulumi.Output[str]
    subject_alternative_names: pulumi.Output[list[str]]
    not_valid_after: pulumi.Output[str | None]
    issuer: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        certificate_path: pulumi.Input[str],
        private_key_path: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        provider: CertificateProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "certificate_path": certificate_path,
            "private_key_path": private_key_path,
            "certificate_id": None,
            "subject_alternative_names": None,
            "not_valid_after": None,
            "issuer": None,
        }
        super().__init__(provider or CertificateProvider(), resource_name, props, opts)


class StalwartListener(dynamic.Resource, module="stalwart", name="NetworkListener"):
    """One Stalwart network listener (``x:NetworkListener``)."""

    name: pulumi.Output[str]
    bind: pulumi.Output[list[str]]
    protocol: pulumi.Output[str]
    use_tls: pulumi.Output[bool]
    tls_implicit: pulumi.Output[bool]
    listener_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        bind: pulumi.Input[list[str]],
        protocol: pulumi.Input[str],
        use_tls: pulumi.Input[bool],
        tls_implicit: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
        provider: ListenerProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "bind": bind,
            "protocol": protocol,
            "use_tls": use_tls,
            "tls_implicit": tls_implicit,
            "listener_id": None,
        }
        super().__init__(provider or ListenerProvider(), resource_name, props, opts)


class StalwartSettings(dynamic.Resource, module="stalwart", name="SystemSettings"):
    """Stalwart's default host name and default TLS certificate (``x:SystemSettings``)."""

    default_hostname: pulumi.Output[str]
    default_certificate_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        default_hostname: pulumi.Input[str],
        default_certificate_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        provider: SettingsProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "default_hostname": default_hostname,
            "default_certificate_id": default_certificate_id,
        }
        super().__init__(provider or SettingsProvider(), resource_name, props, opts)
