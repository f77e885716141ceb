"""The plan table: what each commercial plan gives a tenant unless its file overrides it.

This is the one place plan defaults live. Quotas are in GB (10^9 bytes), CPU in cores and
memory in GiB for the tenant's Kubernetes namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Plan(StrEnum):
    MVP = "mvp"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class Mfa(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True)
class PlanDefaults:
    files_gb: int
    mail_gb: int
    cpu_cores: int
    memory_gib: int
    max_pods: int
    mfa: Mfa


PLANS: dict[Plan, PlanDefaults] = {
    Plan.MVP: PlanDefaults(
        files_gb=50, mail_gb=10, cpu_cores=1, memory_gib=2, max_pods=10, mfa=Mfa.OPTIONAL
    ),
    Plan.PRO: PlanDefaults(
        files_gb=250, mail_gb=50, cpu_cores=2, memory_gib=4, max_pods=20, mfa=Mfa.OPTIONAL
    ),
    Plan.ENTERPRISE: PlanDefaults(
        files_gb=1000, mail_gb=200, cpu_cores=4, memory_gib=8, max_pods=40, mfa=Mfa.REQUIRED
    ),
}
