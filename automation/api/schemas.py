"""What the API accepts and returns: validated at the edge, nothing internal leaks out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from automation.records import ChangeSummary, Operation, Reason, RunRecord, RunState
from tenants.model import SLUG_PATTERN

TriggerOperation = Literal["preview", "up", "refresh", "drift"]


class RunCreate(BaseModel):
    """Trigger a run: name a tenant (its stack) or a stack, and the operation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str | None = Field(default=None, pattern=SLUG_PATTERN, max_length=32)
    stack: str | None = Field(default=None, pattern=r"^(platform|tenant-[a-z][a-z0-9-]*[a-z0-9])$")
    operation: TriggerOperation

    @model_validator(mode="after")
    def _one_target(self) -> RunCreate:
        if (self.tenant is None) == (self.stack is None):
            raise ValueError("give exactly one of 'tenant' or 'stack'")
        return self

    @property
    def stack_name(self) -> str:
        return self.stack or f"tenant-{self.tenant}"


class RunOut(BaseModel):
    """A run as the operator portal sees it."""

    id: str
    stack: str
    tenant: str | None
    operation: Operation
    state: RunState
    reason: Reason | None
    message: str
    summary: ChangeSummary
    requested_by: str
    git_commit: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempt: int
    drifted: list[str]

    @classmethod
    def of(cls, run: RunRecord) -> RunOut:
        return cls(**run.model_dump(exclude={"outputs"}))


class RunPage(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class TenantStatus(BaseModel):
    slug: str
    provisioning_status: dict[str, str]
    provisioning_errors: list[dict[str, object]]
    drift: dict[str, object] | None
    recent_runs: list[RunOut]
