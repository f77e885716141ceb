"""One operation on one stack, safely: lease, guard rails, bounded retries, a run record.

The engine may fail, be locked, or be interrupted; the runner turns each outcome into a
record with a stable reason (automation.errors) and never leaves our lease behind.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from automation import guards
from automation.engine import Engine, OnEvent, OperationResult, Stack
from automation.errors import CancelledError, Failure, StalledError, classify
from automation.lease import FileLease
from automation.progress import Sink, StackEvent, StepLog, translate
from automation.records import ChangeSummary, Operation, Reason, RunRecord, RunState
from automation.runstore import MAX_FAILURES, RunStore
from automation.settings import Settings
from stacks.naming import tenant_slug
from tenants.model import Tenant

MAX_ATTEMPTS = 3
BACKOFF_BASE = 2.0
BACKOFF_CAP = 60.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class RunRequest:
    """What to do to which stack, on whose behalf."""

    stack: str
    operation: Operation
    requested_by: str
    allow_data_loss: bool = False
    wait: float = 0.0
    id: str = field(default_factory=new_run_id)


@dataclass(frozen=True)
class StackSpec:
    """The desired state behind a stack: its tenant (None for the platform) and a hash."""

    tenant: Tenant | None
    spec_hash: str


@dataclass
class _Outcome:
    summary: ChangeSummary = field(default_factory=ChangeSummary)
    drifted: tuple[str, ...] = ()
    previewing: bool = True
    outputs: dict[str, object] = field(default_factory=dict)


class Runner:
    """Executes run requests against the engine; safe to share between threads."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        store: RunStore,
        sink: Sink,
        cancel: threading.Event,
        sleep: Callable[[float], None] = time.sleep,
        git_commit: str | None = None,
    ) -> None:
        self.engine, self.settings, self.store = engine, settings, store
        self.sink, self.cancel, self.sleep = sink, cancel, sleep
        self.git_commit = git_commit

    def execute(self, request: RunRequest, spec: StackSpec) -> RunRecord:
        started = now()
        self.sink(StackEvent(request.stack, "start", op=request.operation.value))
        attempt = 1
        while True:
            outcome = _Outcome()
            try:
                self._check_stall(request.stack, spec)
                self._once(request, spec, outcome)
            except Exception as exc:  # every failure becomes a classified record
                failure = self._classify(exc, outcome)
                if failure.retryable and attempt < MAX_ATTEMPTS and not self.cancel.is_set():
                    self.sleep(min(BACKOFF_CAP, BACKOFF_BASE**attempt) * random.uniform(0.5, 1))  # noqa: S311
                    attempt += 1
                    continue
                return self._finish(request, spec, started, attempt, outcome, failure)
            return self._finish(request, spec, started, attempt, outcome, None)

    def _classify(self, exc: Exception, outcome: _Outcome) -> Failure:
        if self.cancel.is_set():
            return classify(
                CancelledError("cancelled by signal; the engine stopped after the steps in flight"),
                False,
            )
        return classify(exc, outcome.previewing)

    def _check_stall(self, stack: str, spec: StackSpec) -> None:
        if self.store.health(stack).stalled(spec.spec_hash):
            raise StalledError(
                f"{stack} failed {MAX_FAILURES} times in a row with this spec; it is stalled "
                f"until its spec changes (see `dezky-infra runs --stack {stack}`)"
            )

    def _once(self, request: RunRequest, spec: StackSpec, outcome: _Outcome) -> None:
        # One run per stack on this machine, in front of Pulumi's own lock.
        with FileLease(self.settings.locks_dir, request.stack, request.id,
                       request.operation.value, self.settings.lease_seconds) as lease:  # fmt: skip
            lease.acquire(request.wait)
            if self.cancel.is_set():
                raise CancelledError("cancelled before the engine started")
            stack = self.engine.stack(request.stack)
            log = StepLog()
            on_event = translate(request.stack, self.sink, log)
            result = self._operate(request, spec, stack, on_event, log, outcome)
        outcome.summary = ChangeSummary.from_engine(result.changes)
        outcome.outputs = result.outputs
        if request.operation is Operation.DRIFT:
            outcome.drifted = tuple(dict.fromkeys(f"{s.type}::{s.name}" for s in log.changing))

    def _operate(
        self,
        request: RunRequest,
        spec: StackSpec,
        stack: Stack,
        on_event: OnEvent,
        log: StepLog,
        outcome: _Outcome,
    ) -> OperationResult:
        op = request.operation
        if op is Operation.PREVIEW:
            return self.engine.preview(stack, on_event)
        if op is Operation.DRIFT:
            return self.engine.preview(stack, on_event, refresh=True)
        if op is Operation.UP:
            self.engine.preview(stack, on_event)
            guards.check_data_loss(request.stack, log.steps, spec.tenant, request.allow_data_loss)
            outcome.previewing = False
            return self.engine.up(stack, on_event)
        outcome.previewing = False
        if op is Operation.REFRESH:
            return self.engine.refresh(stack, on_event)
        guards.check_destroy(request.stack, spec.tenant, request.allow_data_loss)
        return self.engine.destroy(stack, on_event)

    def _finish(
        self,
        request: RunRequest,
        spec: StackSpec,
        started: str,
        attempt: int,
        outcome: _Outcome,
        failure: Failure | None,
    ) -> RunRecord:
        state = RunState.SUCCEEDED
        if failure is not None:
            state = {Reason.CANCELLED: RunState.CANCELLED, Reason.STALLED: RunState.STALLED}.get(
                failure.reason, RunState.FAILED
            )
        record = RunRecord(
            id=request.id,
            stack=request.stack,
            operation=request.operation,
            state=state,
            requested_by=request.requested_by,
            created_at=started,
            started_at=started,
            finished_at=now(),
            reason=failure.reason if failure else None,
            message=failure.message if failure else "",
            summary=outcome.summary,
            attempt=attempt,
            git_commit=self.git_commit,
            drifted=outcome.drifted,
            tenant=tenant_slug(request.stack),
            outputs=outcome.outputs,
        )
        if state is not RunState.STALLED:
            self.store.record(record, spec.spec_hash, failed=state is RunState.FAILED)
        self.sink(StackEvent(request.stack, "done", op=state.value, message=record.message))
        return record
