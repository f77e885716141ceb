"""An environment (``prod``, ``dev``): the platform settings that tenant specs resolve against.

Each environment is ``environments/<name>.yaml``; the same stack names exist in each, and the
backend decides which one a run touches.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tenants.model import Fqdn
from tenants.problems import Problem, SpecError
from tenants.yamldoc import parse, read_text

ENVIRONMENTS_DIR = "environments"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageBox(_Frozen):
    """A Hetzner Storage Box (backups in fsn1, disaster recovery in hel1)."""

    name: str = Field(strict=True, pattern=r"^[a-z][a-z0-9-]{1,40}$")
    location: str = Field(strict=True, description="Hetzner location, e.g. fsn1 or hel1.")
    type: str = Field(default="bx11", strict=True)
    ssh_keys: tuple[str, ...] = Field(default=(), description="Public keys allowed to log in.")


class Hetzner(_Frozen):
    """The production server and storage at Hetzner (absent in dev)."""

    server_number: int = Field(strict=True, gt=0, description="Robot server number (adopted).")
    ipv4: str = Field(strict=True)
    ipv6: str = Field(strict=True)
    hostname: Fqdn
    admin_networks: tuple[str, ...] = Field(min_length=1, description="CIDRs for SSH and k8s API.")
    backup_box: StorageBox
    dr_box: StorageBox
    backup_sources: tuple[str, ...] = ("mail", "files", "databases")


class Capacity(_Frozen):
    """What the platform can hold; tenants' quotas must fit, with headroom to spare."""

    files_gb: int = Field(strict=True, gt=0)
    mail_gb: int = Field(strict=True, gt=0)
    headroom_percent: int = Field(default=20, strict=True, ge=0, lt=100)


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
    capacity: Capacity | None = None
    hetzner: Hetzner | None = None


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
