"""Tenant file format, version 1: frozen pydantic models, validated once at the edge.

Field names are a contract with CI, the operator portal and the tests: add, never rename.
Unknown keys are errors (``extra="forbid"``) so a typo is never silently ignored, and types
are strict so that ``plan: 1`` or ``files_gb: "10"`` is refused rather than coerced.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from tenants.plans import PLANS, Mfa, Plan

SCHEMA_VERSION: Literal[1] = 1

RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "auth", "files", "mail", "office", "operator", "platform",
        "traefik", "www", "dezky-system", "default", "kube-system", "tenants", "root",
        "support", "status", "portal", "cloud", "smtp", "imap", "autodiscover", "autoconfig",
    }
)  # fmt: skip

SLUG_PATTERN = r"^[a-z][a-z0-9-]*[a-z0-9]$"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def _check_slug(value: str) -> str:
    if "--" in value:
        raise ValueError("must not contain '--'")
    if value in RESERVED_SLUGS:
        raise ValueError(f"'{value}' is reserved for the platform; choose another slug")
    return value


def _check_fqdn(value: str) -> str:
    if value != value.lower():
        raise ValueError(f"'{value}' must be lowercase")
    if len(value) > 253 or value.endswith("."):
        raise ValueError(f"'{value}' is not a valid domain name (no trailing dot, ≤ 253 chars)")
    labels = value.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"'{value}' is not a fully qualified domain name "
            "(labels of a-z, 0-9 and '-', e.g. mail.example.de)"
        )
    if not _TLD.match(labels[-1]):
        raise ValueError(f"'{value}' has no valid top-level domain")
    return value


Slug = Annotated[
    str,
    Field(strict=True, min_length=2, max_length=32, pattern=SLUG_PATTERN),
    AfterValidator(_check_slug),
]
GigaBytes = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
Fqdn = Annotated[str, Field(strict=True, min_length=3, max_length=253), AfterValidator(_check_fqdn)]


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    OFFBOARDING = "offboarding"


class _Frozen(BaseModel):
    # Not model-wide strict: YAML gives lists and strings where the model holds tuples and
    # enums. Scalars are strict field by field so that `name: 123` is refused, not coerced.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Admin(_Frozen):
    """A tenant administrator: gets the admins group and the Manager role on the file space."""

    email: EmailStr = Field(description="Login e-mail address of the administrator.")
    name: str = Field(strict=True, min_length=1, max_length=100, description="Display name.")


class Quota(_Frozen):
    """Overrides of the plan's storage quotas, in GB."""

    files_gb: GigaBytes | None = Field(
        default=None, description="File space quota in GB; default from the plan."
    )
    mail_gb: GigaBytes | None = Field(
        default=None, description="Mail storage quota in GB; default from the plan."
    )


class Tenant(_Frozen):
    """One customer organisation of the platform, as written in ``tenants/<slug>.yaml``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="Dezky tenant",
        json_schema_extra={"$id": "https://dezky.eu/schemas/tenant-v1.json"},
    )

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this file format."
    )
    slug: Slug = Field(
        description="Short unique id; equals the file name without '.yaml'. "
        "2-32 chars, a-z, 0-9 and single '-', starting with a letter."
    )
    name: str = Field(
        strict=True, min_length=1, max_length=100, description="Display name of the tenant."
    )
    plan: Plan = Field(description="Commercial plan; decides the default quotas, CPU/memory, MFA.")
    status: Status = Field(
        default=Status.ACTIVE,
        description="Lifecycle: 'suspended' keeps data but stops logins; 'offboarding' is the "
        "only state in which data-holding resources may be destroyed, by an explicit destroy.",
    )
    portal_domain: Fqdn | None = Field(
        default=None, description="Domain of the tenant's portal; default <slug>.<base domain>."
    )
    mail_domains: tuple[Fqdn, ...] = Field(
        default=(), description="Mail domains served by Stalwart; each unique across tenants."
    )
    admins: tuple[Admin, ...] = Field(
        default=(),
        validate_default=True,
        description="Administrators; at least one for an active tenant.",
    )
    quota: Quota | None = Field(default=None, description="Overrides of the plan's quotas.")
    mfa: Mfa | None = Field(
        default=None, description="Second factor for members; default from the plan."
    )
    purge_files_on_destroy: bool = Field(
        default=False,
        strict=True,
        validate_default=True,
        description="Only with status: offboarding: an explicit destroy deletes the file space "
        "for good instead of disabling it. Mail domains are removed by that destroy either way.",
    )

    @field_validator("purge_files_on_destroy")
    @classmethod
    def _purge_only_when_offboarding(cls, purge: bool, info: ValidationInfo) -> bool:
        if purge and info.data.get("status") is not Status.OFFBOARDING:
            raise ValueError("may only be true when status is offboarding")
        return purge

    @field_validator("mail_domains")
    @classmethod
    def _unique_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({d for d in domains if domains.count(d) > 1})
        if duplicates:
            raise ValueError(f"lists {', '.join(duplicates)} more than once")
        return domains

    @field_validator("admins")
    @classmethod
    def _admins(cls, admins: tuple[Admin, ...], info: ValidationInfo) -> tuple[Admin, ...]:
        if info.data.get("status", Status.ACTIVE) is Status.ACTIVE and not admins:
            raise ValueError("an active tenant needs at least one admin ({email, name})")
        emails = [admin.email.lower() for admin in admins]
        if len(set(emails)) != len(emails):
            raise ValueError("lists the same e-mail more than once")
        return admins

    @property
    def files_gb(self) -> int:
        override = self.quota.files_gb if self.quota else None
        return override or PLANS[self.plan].files_gb

    @property
    def mail_gb(self) -> int:
        override = self.quota.mail_gb if self.quota else None
        return override or PLANS[self.plan].mail_gb

    @property
    def effective_mfa(self) -> Mfa:
        return self.mfa or PLANS[self.plan].mfa

    def resolved_portal_domain(self, base_domain: str) -> str:
        return self.portal_domain or f"{self.slug}.{base_domain}"
