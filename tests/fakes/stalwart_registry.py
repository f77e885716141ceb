"""The object side of the fake Stalwart: ``x:Domain``, ``x:DkimSignature``, ``x:Certificate``,
``x:NetworkListener`` and the ``x:SystemSettings`` singleton in memory.

Follows the 0.16 registry: property update modes (``serverSet`` writes give ``invalidPatch``),
defaults, unique domain names (``primaryKeyViolation``), the DKIM -> Domain foreign key
(``objectIsLinked`` / ``invalidForeignKey``), DKIM keys made by a background task after a create
with ``dkimManagement`` Automatic, and ``dnsZoneFile`` computed on get in Stalwart's BIND format.
Server settings: certificates read (and parsed) from ``files``, a fake of the host's files, with
the derived ``serverSet`` properties; listeners with schema defaults, a unique ``name`` that is
``immutable`` after create; the singleton (no ``/query``, no create or destroy) whose
``defaultCertificateId`` is a foreign key (``invalidForeignKey``; ``objectIsLinked`` on the
certificate's destroy).
Not thread-safe by itself: the server calls it under one lock.
"""

from __future__ import annotations

import base64
import itertools
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

Json = dict[str, Any]
Result = tuple[str, Json]

DOMAIN_PROPS = {
    "name", "aliases", "isEnabled", "createdAt", "description", "logo", "certificateManagement",
    "dkimManagement", "dnsManagement", "memberTenantId", "directoryId", "catchAllAddress",
    "subAddressing", "allowRelaying", "reportAddressUri", "dnsZoneFile",
}  # fmt: skip
DKIM_PROPS = {
    "@type", "domainId", "selector", "privateKey", "publicKey", "createdAt", "stage",
    "nextTransitionAt", "canonicalization", "headers", "expire", "report", "auid", "thirdParty",
    "thirdPartyHash", "memberTenantId",
}  # fmt: skip
CERTIFICATE_PROPS = {
    "certificate", "privateKey", "issuer", "notValidAfter", "notValidBefore",
    "subjectAlternativeNames",
}  # fmt: skip
LISTENER_PROPS = {
    "name", "bind", "protocol", "useTls", "tlsImplicit", "maxConnections",
    "overrideProxyTrustedNetworks", "socketBacklog", "socketNoDelay", "socketReceiveBufferSize",
    "socketReuseAddress", "socketReusePort", "socketSendBufferSize", "socketTosV4", "socketTtl",
    "tlsDisableCipherSuites", "tlsDisableProtocols", "tlsIgnoreClientOrder", "tlsTimeout",
}  # fmt: skip
# x:NetworkListener defaults of the registry schema.
LISTENER_DEFAULTS: dict[str, Any] = {
    "maxConnections": 8192, "protocol": "smtp", "socketBacklog": 1024, "socketNoDelay": True,
    "socketReuseAddress": True, "socketReusePort": True, "tlsIgnoreClientOrder": True,
    "tlsTimeout": 60000, "useTls": True, "tlsImplicit": False, "bind": {},
    "overrideProxyTrustedNetworks": {}, "tlsDisableCipherSuites": {}, "tlsDisableProtocols": {},
}  # fmt: skip
LISTENER_PROTOCOLS = {"smtp", "lmtp", "http", "imap", "pop3", "manageSieve"}
SETTINGS_PROPS = {
    "defaultCertificateId", "defaultDomainId", "defaultHostname", "mailExchangers",
    "maxConnections", "providerInfo", "proxyTrustedNetworks", "services", "threadPoolSize",
}  # fmt: skip
SINGLETON = "singleton"
SERVER_SET = {
    "createdAt", "dnsZoneFile", "publicKey",
    "issuer", "notValidAfter", "notValidBefore", "subjectAlternativeNames",
}  # fmt: skip
IMMUTABLE = {"NetworkListener": {"name"}}
TEXT_VARIANTS = {"Text", "EnvironmentVariable", "File"}
ALGORITHMS = {"Dkim1Ed25519Sha256": True, "Dkim1RsaSha256": True}


def _set_error(kind: str, **extra: Any) -> Json:
    return {"type": kind, **extra}


def _invalid(kind: str, prop: str, **extra: Any) -> Json:
    return _set_error(
        "validationFailed", validationErrors=[{"type": kind, "property": prop, **extra}]
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    """Domains and DKIM signatures with Stalwart's validation and SetError shapes."""

    def __init__(self, mx_host: str = "mail.dezky.test") -> None:
        self.mx_host = mx_host
        self.domains: dict[str, Json] = {}
        self.dkim: dict[str, Json] = {}
        self.links: dict[str, list[tuple[str, str]]] = {}
        """Other objects (e.g. Account) that reference a domain, by domain id."""
        self.dkim_delay: float | None = 0.2
        """Seconds until the DKIM task runs after a create; None: it never runs."""
        self._tasks: list[tuple[float, str]] = []
        self._ids = itertools.count(1)
        self.files: dict[str, str] = {}
        """The mail host's files Stalwart can read (path -> text), for ``File`` values."""
        self.certificates: dict[str, Json] = {}
        self.listeners: dict[str, Json] = {}
        self.settings: Json = {
            "defaultHostname": "localhost", "defaultCertificateId": None,
            "defaultDomainId": None, "mailExchangers": {"0": {"priority": 10}},
            "maxConnections": 8192, "providerInfo": {}, "proxyTrustedNetworks": {},
            "threadPoolSize": None,
        }  # fmt: skip
        """The x:SystemSettings singleton (id ``singleton``)."""

    def method(self, name: str) -> Callable[[Json], Result] | None:
        return {
            "x:Domain/query": self._domain_query,
            "x:Domain/get": lambda a: self._get(a, self.domains, DOMAIN_PROPS, self._domain_view),
            "x:Domain/set": self._domain_set,
            "x:DkimSignature/query": self._dkim_query,
            "x:DkimSignature/get": lambda a: self._get(a, self.dkim, DKIM_PROPS, self._dkim_view),
            "x:DkimSignature/set": self._dkim_set,
            "x:Certificate/query": self._certificate_query,
            "x:Certificate/get": lambda a: self._get(
                a, self.certificates, CERTIFICATE_PROPS, self._plain_view(self.certificates)
            ),
            "x:Certificate/set": self._certificate_set,
            "x:NetworkListener/query": self._listener_query,
            "x:NetworkListener/get": lambda a: self._get(
                a, self.listeners, LISTENER_PROPS, self._plain_view(self.listeners)
            ),
            "x:NetworkListener/set": self._listener_set,
            # A singleton: no /query, one object with the id "singleton".
            "x:SystemSettings/get": lambda a: self._get(
                a,
                {SINGLETON: self.settings},
                SETTINGS_PROPS,
                self._plain_view({SINGLETON: self.settings}),
            ),  # fmt: skip
            "x:SystemSettings/set": self._settings_set,
        }.get(name)

    def run_tasks(self) -> None:
        """Run background tasks that are due (DKIM key generation)."""
        now = time.monotonic()
        due = [t for t in self._tasks if t[0] <= now]
        self._tasks = [t for t in self._tasks if t[0] > now]
        for _, domain_id in due:
            domain = self.domains.get(domain_id)
            if domain and domain["dkimManagement"].get("@type") == "Automatic":
                for algorithm in domain["dkimManagement"].get("algorithms", ALGORITHMS):
                    self.add_dkim(domain_id, algorithm)

    def add_dkim(self, domain_id: str, algorithm: str, stage: str = "active") -> str:
        short = "rsa" if "Rsa" in algorithm else "ed25519"
        key_id = self.new_id()
        self.dkim[key_id] = {
            "@type": algorithm,
            "domainId": domain_id,
            "selector": f"v1-{short}-{datetime.now(UTC):%Y%m%d}",
            "privateKey": {"@type": "Text", "secret": "-----BEGIN PRIVATE KEY-----\nMC4C\n"},
            "publicKey": base64.b64encode(os.urandom(294 if short == "rsa" else 32)).decode(),
            "createdAt": _now(),
            "stage": stage,
        }
        return key_id

    def new_id(self) -> str:
        return f"b{next(self._ids)}"

    def owner_of(self, name: str, skip: str | None = None) -> str | None:
        for domain_id, domain in self.domains.items():
            if domain_id != skip and (domain["name"] == name or name in domain["aliases"]):
                return domain_id
        return None

    # --- x:Domain ------------------------------------------------------------------------

    def _domain_query(self, args: Json) -> Result:
        filter_ = args.get("filter") or {}
        for key in filter_:
            if key not in {"name", "text"}:
                return self._unsupported(key)
        ids = [
            i
            for i, d in self.domains.items()
            if filter_.get("name", d["name"]) == d["name"]
            and filter_.get("text", "") in f"{d['name']} {d.get('description') or ''}"
        ]
        return self._query_response(ids)

    def _domain_set(self, args: Json) -> Result:
        def create(obj: Json) -> Json:
            problem = self._writable(obj, DOMAIN_PROPS) or self._domain_problem(obj, None)
            if problem:
                return problem
            domain_id = self.new_id()
            self.domains[domain_id] = {
                "aliases": {}, "isEnabled": True, "description": None,
                "certificateManagement": {"@type": "Manual"},
                "dkimManagement": {"@type": "Automatic", "algorithms": dict(ALGORITHMS)},
                "dnsManagement": {"@type": "Manual"}, "subAddressing": {"@type": "Enabled"},
                "allowRelaying": False, "reportAddressUri": "mailto:postmaster",
                **obj, "createdAt": _now(),
            }  # fmt: skip
            automatic = self.domains[domain_id]["dkimManagement"].get("@type") == "Automatic"
            if automatic and self.dkim_delay is not None:
                self._tasks.append((time.monotonic() + self.dkim_delay, domain_id))
            return {"id": domain_id, "createdAt": self.domains[domain_id]["createdAt"]}

        def update(domain_id: str, patch: Json) -> Json | None:
            problem = self._writable(patch, DOMAIN_PROPS)
            merged = {**self.domains[domain_id], **patch}
            problem = problem or self._domain_problem(merged, domain_id)
            if problem:
                return problem
            self.domains[domain_id] = merged
            return None

        def linked(domain_id: str) -> list[tuple[str, str]]:
            keys = [
                ("DkimSignature", k) for k, v in self.dkim.items() if v["domainId"] == domain_id
            ]
            return keys + self.links.get(domain_id, [])

        return self._set(args, "Domain", self.domains, create, update, linked)

    def _domain_problem(self, obj: Json, domain_id: str | None) -> Json | None:
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            return _invalid("Required", "name")
        if "." not in name or name != name.lower() or " " in name:
            return _invalid("Invalid", "name", value=name)
        if obj.get("description") == "":
            return _invalid("MinLength", "description", required=1)
        existing = self.owner_of(name, skip=domain_id)
        if existing:
            owner = {"object": "Domain", "id": existing}
            return _set_error("primaryKeyViolation", properties=["name"], objectId=owner)
        return None

    def _domain_view(self, domain_id: str, props: set[str]) -> Json:
        domain = self.domains[domain_id]
        view = {k: v for k, v in domain.items() if k in props}
        if "dnsZoneFile" in props:
            view["dnsZoneFile"] = self.zone_file(domain_id)
        return view

    def zone_file(self, domain_id: str) -> str:
        """What ``build_bind_dns_records`` writes, for a server with one MX and no ACME."""
        domain = self.domains[domain_id]
        name, mx, lines = domain["name"], self.mx_host, []
        for key in self.dkim.values():
            if key["domainId"] == domain_id and key["stage"] in ("active", "retiring"):
                kind = "rsa" if "Rsa" in key["@type"] else "ed25519"
                value = f"v=DKIM1; k={kind}; h=sha256; p={key['publicKey']}"
                lines.append(_txt(f"{key['selector']}._domainkey.{name}.", value))
        if mx.endswith(f".{name}"):
            lines.append(_txt(f"{mx}.", "v=spf1 a -all"))
        lines.append(_txt(f"{name}.", "v=spf1 mx -all"))
        lines.append(f"{name}. IN MX 10 {mx}.\n")
        uri = domain.get("reportAddressUri")
        if uri:
            rua = f"{uri}@{name}" if uri.startswith("mailto:") and "@" not in uri else uri
            lines.append(_txt(f"_dmarc.{name}.", f"v=DMARC1; p=reject; rua={rua}"))
        lines.append(f"_jmap._tcp.{name}. IN SRV 0 1 443 {mx}.\n")
        lines.append(f"_imaps._tcp.{name}. IN SRV 0 1 993 {mx}.\n")
        if uri:
            lines.append(_txt(f"_smtp._tls.{name}.", f"v=TLSRPTv1; rua={rua}"))
        lines.append(f"autoconfig.{name}. IN CNAME {mx}.\n")
        lines.append(f"autodiscover.{name}. IN CNAME {mx}.\n")
        return "".join(lines)

    # --- x:DkimSignature -----------------------------------------------------------------

    def _dkim_query(self, args: Json) -> Result:
        filter_ = args.get("filter") or {}
        for key in filter_:
            if key != "domainId":
                return self._unsupported(key)
        wanted = filter_.get("domainId")
        ids = [k for k, v in self.dkim.items() if wanted in (None, v["domainId"])]
        return self._query_response(ids)

    def _dkim_set(self, args: Json) -> Result:
        def create(obj: Json) -> Json:
            problem = self._writable(obj, DKIM_PROPS)
            if problem:
                return problem
            if obj.get("domainId") not in self.domains:
                target = {"object": "Domain", "id": obj.get("domainId")}
                return _set_error("invalidForeignKey", objectId=target)
            secret = (obj.get("privateKey") or {}).get("secret", "")
            if not obj.get("selector") or "PRIVATE KEY" not in secret:
                reason = "Failed to validate DKIM signature"
                return _set_error(
                    "invalidProperties", properties=["privateKey"], description=reason
                )
            key_id = self.add_dkim(obj["domainId"], obj.get("@type", "Dkim1Ed25519Sha256"))
            self.dkim[key_id].update(obj)
            return {"id": key_id}

        def update(key_id: str, patch: Json) -> Json | None:
            problem = self._writable(patch, DKIM_PROPS)
            if problem is None:
                self.dkim[key_id].update(patch)
            return problem

        return self._set(args, "DkimSignature", self.dkim, create, update, lambda _: [])

    def _dkim_view(self, key_id: str, props: set[str]) -> Json:
        return {k: v for k, v in self.dkim[key_id].items() if k in props or k == "@type"}

    # --- x:Certificate -------------------------------------------------------------------

    def _certificate_query(self, args: Json) -> Result:
        filter_ = args.get("filter") or {}
        for key in filter_:
            if key != "text":
                return self._unsupported(key)
        text = filter_.get("text", "")
        ids = [
            i
            for i, c in self.certificates.items()
            if not text or any(text in name for name in c["subjectAlternativeNames"])
        ]
        return self._query_response(ids)

    def _certificate_set(self, args: Json) -> Result:
        def create(obj: Json) -> Json:
            problem = self._writable(obj, CERTIFICATE_PROPS)
            merged = {"certificate": None, "privateKey": None, **(obj if not problem else {})}
            problem = problem or self._certificate_problem(merged)
            if problem:
                return problem
            cert_id = self.new_id()
            self.certificates[cert_id] = self._with_parsed(merged)
            return {"id": cert_id}

        def update(cert_id: str, patch: Json) -> Json | None:
            problem = self._writable(patch, CERTIFICATE_PROPS)
            merged = {**self.certificates[cert_id], **patch}
            problem = problem or self._certificate_problem(merged)
            if problem:
                return problem
            self.certificates[cert_id] = self._with_parsed(merged)
            return None

        def linked(cert_id: str) -> list[tuple[str, str]]:
            uses = self.settings.get("defaultCertificateId") == cert_id
            return [("SystemSettings", SINGLETON)] if uses else []

        return self._set(args, "Certificate", self.certificates, create, update, linked)

    def _text_of(self, value: Any, prop: str) -> tuple[str | None, Json | None]:
        """The text behind an x:PublicText / x:SecretText value, or the SetError."""
        if not isinstance(value, dict) or value.get("@type") not in TEXT_VARIANTS:
            return None, _invalid("Required", prop)
        if value["@type"] == "File":
            path = value.get("filePath")
            if not isinstance(path, str) or path not in self.files:
                reason = f"Failed to read file {path!r}"
                return None, _set_error("invalidProperties", properties=[prop], description=reason)
            return self.files[path], None
        if value["@type"] == "Text":
            return str(value.get("value" if prop == "certificate" else "secret") or ""), None
        reason = "Environment variable not found"
        return None, _set_error("invalidProperties", properties=[prop], description=reason)

    def _certificate_problem(self, cert: Json) -> Json | None:
        pem, problem = self._text_of(cert.get("certificate"), "certificate")
        key_pem, key_problem = self._text_of(cert.get("privateKey"), "privateKey")
        if problem or key_problem:
            return problem or key_problem
        try:
            parsed = x509.load_pem_x509_certificate(str(pem).encode())
        except ValueError:
            reason = "Failed to parse certificate"
            return _set_error("invalidProperties", properties=["certificate"], description=reason)
        try:
            key = serialization.load_pem_private_key(str(key_pem).encode(), password=None)
        except (ValueError, TypeError):
            reason = "Failed to parse private key"
            return _set_error("invalidProperties", properties=["privateKey"], description=reason)
        if key.public_key() != parsed.public_key():
            reason = "Private key does not match certificate"
            return _set_error("invalidProperties", properties=["privateKey"], description=reason)
        return None

    def _with_parsed(self, cert: Json) -> Json:
        """The stored object plus what the server derives from the PEM (serverSet props)."""
        pem, _ = self._text_of(cert["certificate"], "certificate")
        parsed = x509.load_pem_x509_certificate(str(pem).encode())
        try:
            san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = san.value.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        return {
            "certificate": cert["certificate"],
            "privateKey": cert["privateKey"],
            "issuer": parsed.issuer.rfc4514_string(),
            "notValidBefore": f"{parsed.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
            "notValidAfter": f"{parsed.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            "subjectAlternativeNames": dict.fromkeys(names, True),
        }

    # --- x:NetworkListener ---------------------------------------------------------------

    def _listener_query(self, args: Json) -> Result:
        filter_ = args.get("filter") or {}
        for key in filter_:
            if key not in {"name", "text"}:
                return self._unsupported(key)
        ids = [
            i
            for i, listener in self.listeners.items()
            if filter_.get("name", listener["name"]) == listener["name"]
            and filter_.get("text", "") in listener["name"]
        ]
        return self._query_response(ids)

    def _listener_set(self, args: Json) -> Result:
        def create(obj: Json) -> Json:
            problem = self._writable(obj, LISTENER_PROPS)
            merged = {**LISTENER_DEFAULTS, **(obj if not problem else {})}
            problem = problem or self._listener_problem(merged, None)
            if problem:
                return problem
            listener_id = self.new_id()
            self.listeners[listener_id] = merged
            return {"id": listener_id}

        def update(listener_id: str, patch: Json) -> Json | None:
            problem = self._writable(patch, LISTENER_PROPS, "NetworkListener")
            merged = {**self.listeners[listener_id], **patch}
            problem = problem or self._listener_problem(merged, listener_id)
            if problem:
                return problem
            self.listeners[listener_id] = merged
            return None

        return self._set(args, "NetworkListener", self.listeners, create, update, lambda _: [])

    def _listener_problem(self, obj: Json, listener_id: str | None) -> Json | None:
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            return _invalid("Required", "name")
        if obj.get("protocol") not in LISTENER_PROTOCOLS:
            reason = f"Invalid value for enum NetworkListenerProtocol: {obj.get('protocol')!r}"
            return _set_error("invalidProperties", properties=["protocol"], description=reason)
        bind = obj.get("bind")
        if not isinstance(bind, dict) or not bind:
            return _invalid("MinLength", "bind", required=1)
        for address in bind:
            host, _, port = address.rpartition(":")
            if not port.isdigit() or not host or not 0 < int(port) < 65536:
                return _invalid("Invalid", "bind", value=address)
        for flag in ("useTls", "tlsImplicit"):
            if not isinstance(obj.get(flag), bool):
                return _set_error("invalidProperties", properties=[flag])
        for other_id, other in self.listeners.items():
            if other_id != listener_id and other["name"] == name:
                owner = {"object": "NetworkListener", "id": other_id}
                return _set_error("primaryKeyViolation", properties=["name"], objectId=owner)
        return None

    # --- x:SystemSettings (singleton) ----------------------------------------------------

    def _settings_set(self, args: Json) -> Result:
        def create(_obj: Json) -> Json:
            return _set_error("singleton", description="Cannot create a singleton object")

        def update(_id: str, patch: Json) -> Json | None:
            problem = self._writable(patch, SETTINGS_PROPS)
            if problem:
                return problem
            cert_id = patch.get("defaultCertificateId", self.settings["defaultCertificateId"])
            if cert_id is not None and cert_id not in self.certificates:
                target = {"object": "Certificate", "id": cert_id}
                return _set_error("invalidForeignKey", objectId=target)
            hostname = patch.get("defaultHostname", self.settings["defaultHostname"])
            if not isinstance(hostname, str) or not hostname:
                return _invalid("MinLength", "defaultHostname", required=1)
            self.settings.update(patch)
            return None

        singleton = {SINGLETON: self.settings}
        if args.get("destroy"):
            # Destroying a singleton: refused per object (forbidden), nothing else happens.
            rest = {k: v for k, v in args.items() if k != "destroy"}
            out = self._set(rest, "SystemSettings", singleton, create, update, lambda _: [])[1]
            out["notDestroyed"] = {
                i: _set_error("forbidden", description="Cannot destroy a singleton")
                for i in args["destroy"]
            }
            return "set", out
        return self._set(args, "SystemSettings", singleton, create, update, lambda _: [])

    def _plain_view(self, store: dict[str, Json]) -> Callable[[str, set[str]], Json]:
        def view(object_id: str, props: set[str]) -> Json:
            return {k: v for k, v in store[object_id].items() if k in props}

        return view

    # --- shared method shapes ------------------------------------------------------------

    def _get(
        self, args: Json, store: dict[str, Json], known: set[str], view: Callable[..., Json]
    ) -> Result:
        ids = args.get("ids")
        props = set(args.get("properties") or known)
        found = [i for i in (store if ids is None else ids) if i in store]
        return "get", {
            "accountId": "admin", "state": "s1",
            "list": [{"id": i, **view(i, props)} for i in found],
            "notFound": [i for i in ids or [] if i not in store],
        }  # fmt: skip

    def _set(
        self,
        args: Json,
        obj: str,
        store: dict[str, Json],
        create: Callable[[Json], Json],
        update: Callable[[str, Json], Json | None],
        linked: Callable[[str], list[tuple[str, str]]],
    ) -> Result:
        out: Json = {"accountId": "admin", "oldState": "s1", "newState": "s2"}
        created: dict[str, Json] = {}
        not_created: dict[str, Json] = {}
        updated: dict[str, None] = {}
        not_updated: dict[str, Json] = {}
        destroyed: list[str] = []
        not_destroyed: dict[str, Json] = {}
        for cid, body in (args.get("create") or {}).items():
            result = create(body)
            (not_created if "type" in result else created)[cid] = result
        for target, patch in (args.get("update") or {}).items():
            problem = update(target, patch) if target in store else _set_error("notFound")
            if problem:
                not_updated[target] = problem
            else:
                updated[target] = None
        for target in args.get("destroy") or []:
            refs = linked(target) if target in store else []
            if target not in store:
                not_destroyed[target] = _set_error("notFound")
            elif refs:
                not_destroyed[target] = _set_error(
                    "objectIsLinked",
                    objectId={"object": obj, "id": target},
                    linkedObjects=[{"object": o, "id": i} for o, i in refs],
                )
            else:
                del store[target]
                destroyed.append(target)
        out.update(created=created, notCreated=not_created, updated=updated)
        out.update(notUpdated=not_updated, destroyed=destroyed, notDestroyed=not_destroyed)
        # RFC 8620: null, not empty, when nothing happened.
        out.update({k: v or None for k, v in out.items()})
        return "set", out

    def _writable(self, obj: Any, known: set[str], updating: str | None = None) -> Json | None:
        """Unknown or server-set properties; with ``updating`` (the object type), also the
        ``immutable`` ones, which only a create may write."""
        if not isinstance(obj, dict):
            return _set_error("invalidProperties", description="expected an object")
        unknown = [k for k in obj if k not in known]
        if unknown:
            return _set_error("invalidProperties", properties=unknown)
        server_set = [k for k in obj if k in SERVER_SET]
        if server_set:
            reason = "Cannot modify server set property"
            return _set_error("invalidPatch", properties=server_set, description=reason)
        read_only = [k for k in obj if k in IMMUTABLE.get(updating or "", set())]
        if read_only:
            reason = "Cannot modify read-only property"
            return _set_error("invalidPatch", properties=read_only, description=reason)
        return None

    def _query_response(self, ids: list[str]) -> Result:
        return "query", {
            "accountId": "admin", "queryState": "s1", "canCalculateChanges": False,
            "position": 0, "ids": ids, "total": len(ids),
        }  # fmt: skip

    def _unsupported(self, key: str) -> Result:
        return "error", {
            "type": "unsupportedFilter",
            "description": f"Filter on property {key} is not supported or invalid",
        }


def _txt(name: str, value: str) -> str:
    """A TXT line as Stalwart's BindSerializer writes it: 255-byte chunks in parentheses."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    if len(value) <= 255:
        return f'{name} IN TXT "{escape(value)}"\n'
    chunks = "".join(f'    "{escape(value[i : i + 255])}"\n' for i in range(0, len(value), 255))
    return f"{name} IN TXT (\n{chunks})\n"
