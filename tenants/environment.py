"""An environment (``prod``, ``dev``): the platform settings that tenant specs resolve against.

Each environment is ``environments/<name>.yaml``; the same stack names exist in each, and the
backend decides which one a run touches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from tenants.model import Fqdn
from tenants.problems import Problem, SpecError
from tenants.yamldoc import parse, read_text

ENVIRONMENTS_DIR = "environments"

# Hetzner Object Storage locations; all in the EU (Falkenstein, Nuremberg, Helsinki).
OBJECT_STORAGE_LOCATIONS = ("fsn1", "nbg1", "hel1")
_OBJECT_STORAGE_HOST = ".your-objectstorage.com"
# An image reference: registry host, a path, then an exact tag and optionally its digest.
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# An exact version tag (1.4.2, v2.0.0-rc.1, 2026.8.0); "latest", "main" or "1" move.
_EXACT_TAG = re.compile(r"^v?[0-9]+(?:\.[0-9]+){1,3}(?:[-+][0-9A-Za-z.-]+)?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def image_problem(reference: str) -> str | None:
    """Why an image reference is not pinned, or None when it is (exact tag, or tag@digest)."""
    match = _IMAGE.match(reference)
    if match is None:
        return f"'{reference}' is not an image reference of the form registry/path:tag[@sha256:…]"
    if match["digest"] is None and not _EXACT_TAG.match(match["tag"]):
        return (
            f"'{reference}' is not pinned: use an exact version tag (e.g. 1.4.2) "
            "or tag@sha256:<digest>"
        )
    return None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageBox(_Frozen):
    """A Hetzner Storage Box (backups in fsn1, disaster recovery in hel1)."""

    name: str = Field(strict=True, pattern=r"^[a-z][a-z0-9-]{1,40}$")
    location: str = Field(strict=True, description="Hetzner location, e.g. fsn1 or hel1.")
    type: str = Field(default="bx11", strict=True)
    ssh_keys: tuple[str, ...] = Field(
        default=(),
        description="Public keys of the main account (set at creation only); the automation's "
        "key must be one: it installs the subaccounts' keys over SFTP.",
    )
    known_hosts: str = Field(
        strict=True,
        min_length=1,
        description="The box's SSH host keys, pinned: '[uXXXXX.your-storagebox.de]:23 "
        "ssh-ed25519 AAAA…' lines (ssh-keyscan -p 23, checked against Hetzner's published "
        "fingerprints).",
    )


class Hetzner(_Frozen):
    """The production server and storage at Hetzner (absent in dev)."""

    server_number: int = Field(strict=True, gt=0, description="Robot server number (adopted).")
    ipv4: str = Field(strict=True)
    ipv6: str = Field(strict=True)
    hostname: Fqdn
    admin_networks: tuple[str, ...] = Field(min_length=1, description="CIDRs for SSH and k8s API.")
    backup_box: StorageBox
    dr_box: StorageBox
    backup_sources: tuple[str, ...] = Field(
        default=("mail", "files", "databases"),
        description="One subaccount per source on each box; the restic repositories of the "
        "platform's backups live in them (stacks/backups.py).",
    )
    vswitch_id: int | None = Field(
        default=None, strict=True, gt=0, description="Robot vSwitch to attach the server to."
    )
    host_known_hosts: str = Field(
        strict=True,
        min_length=1,
        description="The server's SSH host keys, pinned ('<ipv4> ssh-ed25519 AAAA…' lines); "
        "Ansible connects with strict host key checking.",
    )
    root_authorized_keys: tuple[str, ...] = Field(
        min_length=1,
        description="Public keys that may log in as root (the automation's and on-call's); "
        "the host's authorized_keys holds exactly these.",
    )
    backup_ssh_keys: tuple[str, ...] = Field(
        min_length=1,
        description="Public keys every backup subaccount accepts: the host's restic key (its "
        "private half is the platform secret restic-ssh-private-key) and the automation's.",
    )
    automation_identity_file: str = Field(
        default="/etc/dezky/ssh/automation_ed25519",
        strict=True,
        pattern=r"^/\S+$",
        description="Private key of the automation on the machine that runs Pulumi: logs in "
        "to the Storage Boxes (main accounts and subaccounts) to manage keys and repositories.",
    )

    @property
    def boxes(self) -> dict[str, StorageBox]:
        """The Storage Boxes by role: ``backup`` (restic repositories) and ``dr`` (their copy)."""
        return {"backup": self.backup_box, "dr": self.dr_box}


class Capacity(_Frozen):
    """What the platform can hold; tenants' quotas must fit, with headroom to spare."""

    files_gb: int = Field(strict=True, gt=0)
    mail_gb: int = Field(strict=True, gt=0)
    headroom_percent: int = Field(default=20, strict=True, ge=0, lt=100)


class Tls(_Frozen):
    """How the ingress certificates are issued (a cert-manager ClusterIssuer)."""

    issuer: Literal["letsencrypt", "self-signed"] = Field(
        description="letsencrypt: ACME HTTP-01 through the ingress (needs public DNS); "
        "self-signed: for environments without public DNS, e.g. *.dezky.local."
    )
    acme_email: EmailStr | None = Field(
        default=None,
        validate_default=True,
        description="Contact of the Let's Encrypt account (expiry notices); letsencrypt only.",
    )

    @field_validator("acme_email")
    @classmethod
    def _email_for_acme_only(cls, email: str | None, info: ValidationInfo) -> str | None:
        issuer = info.data.get("issuer")
        if issuer == "letsencrypt" and email is None:
            raise ValueError("required with issuer letsencrypt (Let's Encrypt account contact)")
        if issuer == "self-signed" and email is not None:
            raise ValueError("only used with issuer letsencrypt; remove it")
        return email


class ObjectStorage(_Frozen):
    """The Hetzner Object Storage bucket (S3) that holds the OCIS file blobs."""

    region: Literal["fsn1", "nbg1", "hel1"] = Field(
        description="Hetzner Object Storage location (EU): fsn1, nbg1 or hel1."
    )
    endpoint: str = Field(
        strict=True, description="S3 endpoint, e.g. https://fsn1.your-objectstorage.com."
    )
    bucket: str = Field(
        strict=True,
        pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
        description="Bucket name: 3-63 of a-z, 0-9 and '-'.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_in_region(cls, endpoint: str, info: ValidationInfo) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"'{endpoint}' must be an https:// URL without a path")
        region = info.data.get("region")
        host = parts.hostname
        if (
            host.endswith(_OBJECT_STORAGE_HOST)
            and region
            and host != f"{region}{_OBJECT_STORAGE_HOST}"
        ):
            raise ValueError(f"'{endpoint}' is not the endpoint of region {region}")
        return endpoint.rstrip("/")


class App(_Frozen):
    """One of Dezky's own web applications, run from a pinned image."""

    image: str = Field(strict=True, description="registry/path:exact-tag or tag@sha256:digest.")
    port: int = Field(default=3000, strict=True, gt=0, lt=65536)
    replicas: int = Field(default=1, strict=True, ge=1, le=10)
    env: dict[str, str] = Field(default_factory=dict, description="Plain settings, no secrets.")

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        problem = image_problem(image)
        if problem:
            raise ValueError(problem)
        return image

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in env if not _ENV_NAME.match(k))
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        return env


# What the platform stack gives the operator portal (a Nuxt app: NUXT_* variables override its
# runtime config): its OpenID Connect issuer and client id, and the client secret (a Secret).
OPERATOR_PORTAL_OIDC_ENV = {
    "issuer": "NUXT_OIDC_ISSUER",
    "client_id": "NUXT_OIDC_CLIENT_ID",
    "client_secret": "NUXT_OIDC_CLIENT_SECRET",
}


class Apps(_Frozen):
    """The customer portal, the operator portal and platform-api."""

    portal: App
    operator_portal: App
    platform_api: App

    @field_validator("operator_portal")
    @classmethod
    def _oidc_from_the_platform(cls, app: App) -> App:
        given = sorted(set(OPERATOR_PORTAL_OIDC_ENV.values()) & set(app.env))
        if given:
            raise ValueError(
                f"env.{', env.'.join(given)}: set by the platform stack from its Authentik "
                "application 'dezky-operator' (secret 'operator-oidc-client-secret'); "
                "remove them here"
            )
        return app

    @field_validator("platform_api")
    @classmethod
    def _mongodb_from_the_platform(cls, app: App) -> App:
        if "MONGODB_URI" in app.env:
            raise ValueError(
                "env.MONGODB_URI is built from the platform's MongoDB (platform secret "
                "'mongodb-root-password'); remove it here"
            )
        return app


class Services(_Frozen):
    """The platform services on k3s: certificates, identity, files, office, Dezky's apps."""

    tls: Tls
    apps: Apps
    object_storage: ObjectStorage | None = Field(
        default=None,
        description="S3 backend of OCIS (Hetzner Object Storage); absent: files on its volume.",
    )
    mail_host: IPv4Address | None = Field(
        default=None,
        description="IPv4 address at which the cluster's pods reach the host running Stalwart "
        "(its HTTP listener, port 8080), behind https://mail.<base_domain>. Default: the "
        "Hetzner server's ipv4; absent with no hetzner section (dev): no mail front door.",
    )

    @field_validator("mail_host")
    @classmethod
    def _routable(cls, address: IPv4Address | None) -> IPv4Address | None:
        # What the API server refuses as an endpoint address.
        if address is not None and (
            address.is_unspecified
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
        ):
            raise ValueError(
                f"{address} cannot be an endpoint (unspecified, loopback, link-local or "
                "multicast); use the host's own address on its network"
            )
        return address


@dataclass(frozen=True)
class Hostnames:
    """The platform's public host names, all under the base domain."""

    auth: str
    files: str
    office: str
    mail: str
    portal: str
    operator: str
    api: str

    @classmethod
    def under(cls, base_domain: str) -> Hostnames:
        return cls(
            auth=f"auth.{base_domain}",
            files=f"files.{base_domain}",
            office=f"office.{base_domain}",
            mail=f"mail.{base_domain}",
            portal=f"portal.{base_domain}",
            operator=f"operator.{base_domain}",
            api=f"api.{base_domain}",
        )


class Environment(BaseModel):
    """Platform settings of one environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(strict=True, pattern=r"^[a-z][a-z0-9-]{0,15}$")
    base_domain: Fqdn = Field(description="Tenants' portals default to <slug>.<base_domain>.")
    ingress_namespace: str = Field(
        default="kube-system",
        strict=True,
        description="Namespace of the ingress controller (k3s runs Traefik in kube-system).",
    )
    ingress_class: str = Field(
        default="traefik",
        strict=True,
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="IngressClass of the ingress controller (k3s: traefik).",
    )
    capacity: Capacity | None = None
    hetzner: Hetzner | None = None
    services: Services | None = Field(
        default=None, description="Platform services on k3s; absent: the stack declares none."
    )

    @field_validator("services")
    @classmethod
    def _public_names_for_acme(
        cls, services: Services | None, info: ValidationInfo
    ) -> Services | None:
        base = info.data.get("base_domain") or ""
        private = base.endswith((".local", ".localhost", ".test", ".internal"))
        if services is not None and services.tls.issuer == "letsencrypt" and private:
            raise ValueError(
                f"tls.issuer letsencrypt needs public DNS, which {base} has not; "
                "use issuer self-signed"
            )
        return services

    @property
    def hostnames(self) -> Hostnames:
        return Hostnames.under(self.base_domain)


def load_environment(path: Path) -> Environment:
    """Read and validate ``environments/<name>.yaml``."""
    shown = str(path)
    if not path.exists():
        raise SpecError([Problem(shown, 1, 1, "file", "no such environment file")])
    doc = parse(read_text(path, shown), shown)
    try:
        return Environment.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            line, col = doc.position(tuple(err["loc"]))
            field = ".".join(str(p) for p in err["loc"]) or "file"
            problems.append(Problem(shown, line, col, field, err["msg"]))
        raise SpecError(problems) from None
