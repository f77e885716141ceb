"""Stalwart mail domains as a Pulumi dynamic resource: client, provider, resource.

``StalwartClient`` speaks the JMAP management API (``_stalwart_jmap``), ``DomainProvider``
implements check/diff/create/read/update/delete on it, ``Domain`` is the typed resource.

Credentials come only from the stack config ``stalwart:url`` and ``stalwart:token`` and are
never pickled into state (``_base.TokenProvider``). The owning tenant is recorded in the
domain's ``description`` (``dezky-infra tenant <slug>``), because Stalwart's own tenants
(``memberTenantId``) are an Enterprise feature.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pulumi
from pulumi import dynamic

from components.providers._base import TokenProvider, config_keys, slug_problem
from components.providers._dnszone import parse_zone
from components.providers._http import (
    ApiError,
    PermanentApiError,
    RetryableApiError,
    RetryPolicy,
)
from components.providers._stalwart_jmap import SYSTEM, StalwartClient, StalwartSetError

__all__ = [
    "CONFIG_TOKEN",
    "CONFIG_URL",
    "ApiError",
    "Domain",
    "DomainProvider",
    "PermanentApiError",
    "RetryableApiError",
    "StalwartClient",
    "StalwartSetError",
    "dns_records",
]

CONFIG_URL, CONFIG_TOKEN = config_keys(SYSTEM)

_MARKER = "dezky-infra tenant {slug}"
_MARKER_RE = re.compile(r"^dezky-infra tenant ([a-z0-9-]+)$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD_RE = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
# Default x:DkimManagement Automatic algorithms: Dkim1Ed25519Sha256 and Dkim1RsaSha256.
_DEFAULT_ALGORITHMS = 2
_DKIM_PROPS = ("domainId", "selector", "stage")
_KIND_ORDER = {"mx": 0, "spf": 1, "dkim": 2, "dmarc": 3}


def fqdn_problem(value: object) -> str | None:
    """Why ``value`` is not a lowercase FQDN without trailing dot, or None if it is one."""
    if not isinstance(value, str) or not 3 <= len(value) <= 253:
        return "must be a domain name of 3 to 253 characters"
    labels = value.split(".")
    if value != value.lower() or len(labels) < 2:
        return f"{value!r} must be a lowercase fully qualified name such as mail.example.de"
    if not all(_LABEL_RE.match(label) for label in labels) or not _TLD_RE.match(labels[-1]):
        return f"{value!r} is not a valid domain name (labels of a-z, 0-9, '-'; no trailing dot)"
    return None


def dns_records(zone: str, domain: str) -> list[dict[str, str]]:
    """The MX, SPF, DKIM and DMARC records for ``domain`` from Stalwart's ``dnsZoneFile``."""
    apex = f"{domain}."
    found: list[dict[str, str]] = []
    for rec in parse_zone(zone):
        kind = None
        if rec.type == "MX" and rec.name == apex:
            kind = "mx"
        elif rec.type == "TXT" and rec.value.startswith("v=spf1"):
            kind = "spf"
        elif rec.type == "TXT" and rec.name.endswith(f"._domainkey.{apex}"):
            kind = "dkim"
        elif rec.type == "TXT" and rec.name == f"_dmarc.{apex}":
            kind = "dmarc"
        if kind is not None:
            found.append({"kind": kind, "name": rec.name, "type": rec.type, "value": rec.value})
    # Stable order, so outputs do not flap between runs.
    return sorted(found, key=lambda r: (_KIND_ORDER[r["kind"]], r["name"], r["value"]))


class DomainProvider(TokenProvider[StalwartClient]):
    """CRUD for a Stalwart ``x:Domain`` and its DKIM keys; credentials only from config."""

    system = SYSTEM
    product = "Stalwart"
    client_type = StalwartClient
    inputs = ("domain", "tenant_slug")
    checks = (("domain", fqdn_problem), ("tenant_slug", slug_problem))
    replace_on = frozenset({"domain"})

    def __init__(
        self,
        *,
        dkim_timeout: float = 120.0,
        poll_interval: float = 2.0,
        http_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(http_timeout=http_timeout, retry=retry)
        self.dkim_timeout = dkim_timeout
        self.poll_interval = poll_interval

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        name, slug = str(props["domain"]), str(props["tenant_slug"])
        with self._client() as client:
            domain_id = client.find_domain(name)
            if domain_id is None:
                domain_id = self._create(client, name, slug)
            self._claim(client, domain_id, name, slug)
            outs = self._observe(client, domain_id, wait=True)
        if outs is None:
            raise PermanentApiError(SYSTEM, f"domain {name!r} vanished while it was created")
        return dynamic.CreateResult(domain_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        with self._client() as client:
            outs = self._observe(client, id_, wait=False)
        return self._read_result(id_, outs)

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        name, slug = str(news["domain"]), str(news["tenant_slug"])
        with self._client() as client:
            self._claim(client, id_, name, slug)
            outs = self._observe(client, id_, wait=True)
        if outs is None:
            raise PermanentApiError(SYSTEM, f"domain {name!r} vanished during the update")
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        with self._client() as client:
            # DKIM keys reference the domain (objectIsLinked); the rotation task may add
            # one between our calls, so a DKIM-only refusal is retried a few times.
            for _ in range(3):
                client.destroy_dkim(client.dkim_ids(id_))
                try:
                    client.destroy_domain(id_)
                    return
                except StalwartSetError as err:
                    if err.set_type != "objectIsLinked" or any(
                        obj != "DkimSignature" for obj, _ in err.linked
                    ):
                        raise
            raise PermanentApiError(SYSTEM, f"domain {id_!r} keeps getting new DKIM keys")

    # --- helpers -------------------------------------------------------------------------

    def _create(self, client: StalwartClient, name: str, slug: str) -> str:
        try:
            return client.create_domain({"name": name, "description": _marker(slug)})
        except StalwartSetError as err:
            # Lost a race with another create of the same name: adopt that one.
            existing = client.find_domain(name) if err.set_type == "primaryKeyViolation" else None
            if existing is None:
                raise
            return existing

    def _claim(self, client: StalwartClient, domain_id: str, name: str, slug: str) -> None:
        """Make the live domain carry our tenant marker; write nothing if it already does."""
        live = client.get_domain(domain_id, ["name", "description"])
        if live is None:
            raise PermanentApiError(SYSTEM, f"domain {name!r} ({domain_id}) does not exist")
        owner = _owner(live.get("description"))
        if owner is not None and owner != slug:
            raise PermanentApiError(
                SYSTEM, f"domain {name!r} belongs to tenant {owner!r}, not {slug!r}; not adopting"
            )
        if live.get("description") != _marker(slug):
            client.update_domain(domain_id, {"description": _marker(slug)})

    def _observe(
        self, client: StalwartClient, domain_id: str, *, wait: bool
    ) -> dict[str, Any] | None:
        """Live outputs; with ``wait``, poll until Stalwart's background task made the DKIM keys."""
        deadline = time.monotonic() + self.dkim_timeout
        while True:
            live = client.get_domain(domain_id, ["name", "description", "dkimManagement"])
            if live is None:
                return None
            keys = client.get_dkim(client.dkim_ids(domain_id), _DKIM_PROPS)
            selectors = sorted(
                str(k["selector"]) for k in keys if str(k.get("stage", "")).lower() == "active"
            )
            if not wait or len(selectors) >= _expected_keys(live.get("dkimManagement")):
                # Asking for dnsZoneFile makes Stalwart build the zone, so only once keys exist.
                zone = client.get_domain(domain_id, ["dnsZoneFile"]) or {}
                records = dns_records(str(zone.get("dnsZoneFile") or ""), str(live["name"]))
                dkim = [r["name"] for r in records if r["kind"] == "dkim"]
                published = {name.split("._domainkey.")[0] for name in dkim}
                if not wait or published.issuperset(selectors):
                    return {
                        "domain": str(live["name"]),
                        "tenant_slug": _owner(live.get("description")) or "",
                        "domain_id": domain_id,
                        "dkim_selectors": selectors,
                        "dns_records": records,
                    }
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableApiError(
                    SYSTEM,
                    f"DKIM keys of {live['name']!r} not ready after {self.dkim_timeout:g}s; "
                    "the next run adopts the domain and waits again",
                )
            time.sleep(min(self.poll_interval, remaining))


def _marker(slug: str) -> str:
    return _MARKER.format(slug=slug)


def _owner(description: object) -> str | None:
    match = _MARKER_RE.match(description) if isinstance(description, str) else None
    return match.group(1) if match else None


def _expected_keys(management: object) -> int:
    """Active keys the background task will create: one per configured algorithm."""
    if not isinstance(management, dict):
        return _DEFAULT_ALGORITHMS
    if management.get("@type") == "Manual":
        return 0
    algorithms = management.get("algorithms")
    return len(algorithms) if isinstance(algorithms, dict) else _DEFAULT_ALGORITHMS


class Domain(dynamic.Resource, module="stalwart", name="Domain"):
    """A Stalwart mail domain with its DKIM keys and the DNS records to publish for it."""

    domain: pulumi.Output[str]
    tenant_slug: pulumi.Output[str]
    domain_id: pulumi.Output[str]
    dkim_selectors: pulumi.Output[list[str]]
    dns_records: pulumi.Output[list[dict[str, str]]]
    """``{"kind": mx|spf|dkim|dmarc, "name": FQDN with trailing dot, "type", "value"}``."""

    def __init__(
        self,
        resource_name: str,
        *,
        domain: pulumi.Input[str],
        tenant_slug: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        provider: DomainProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "domain": domain,
            "tenant_slug": tenant_slug,
            "domain_id": None,
            "dkim_selectors": None,
            "dns_records": None,
        }
        super().__init__(provider or DomainProvider(), resource_name, props, opts)
