"""Run records: what was asked, by whom, what happened. No Pulumi import (the API reads these)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Operation(StrEnum):
    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"
    DESTROY = "destroy"
    DRIFT = "drift"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STALLED = "stalled"


class Reason(StrEnum):
    """Stable failure reasons; automation.errors maps every failure to one of these."""

    SPEC_INVALID = "SpecInvalid"
    UPDATE_CONFLICT = "UpdateConflict"
    PREVIEW_FAILED = "PreviewFailed"
    UPDATE_FAILED = "UpdateFailed"
    PROVIDER_API = "ProviderApi"
    ENGINE_MISSING = "EngineMissing"
    DATA_LOSS_REFUSED = "DataLossRefused"
    CANCELLED = "Cancelled"
    STALLED = "Stalled"
    INTERNAL = "Internal"


class ChangeSummary(BaseModel):
    """Resource counts of one run, as the engine reports them."""

    model_config = ConfigDict(frozen=True)

    create: int = 0
    update: int = 0
    replace: int = 0
    delete: int = 0
    same: int = 0

    @classmethod
    def from_engine(cls, changes: dict[str, int]) -> ChangeSummary:
        replace = sum(changes.get(k, 0) for k in ("replace", "create-replacement"))
        return cls(
            create=changes.get("create", 0),
            update=changes.get("update", 0),
            replace=replace,
            delete=changes.get("delete", 0),
            same=changes.get("same", 0),
        )

    @property
    def changed(self) -> bool:
        return bool(self.create or self.update or self.replace or self.delete)


class RunRecord(BaseModel):
    """One operation on one stack."""

    model_config = ConfigDict(frozen=True)

    id: str
    stack: str
    operation: Operation
    state: RunState
    requested_by: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    reason: Reason | None = None
    message: str = ""
    summary: ChangeSummary = Field(default_factory=ChangeSummary)
    attempt: int = 1
    git_commit: str | None = None
    drifted: tuple[str, ...] = ()
    tenant: str | None = None
    # Non-secret stack outputs of a successful up (the engine never hands us secret ones).
    outputs: dict[str, object] = Field(default_factory=dict)
