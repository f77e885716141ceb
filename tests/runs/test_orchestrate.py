"""Which stacks run, in which order, how many at once; stalls after repeated failure."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from automation.orchestrate import (
    Selection,
    SelectionError,
    check_blast_radius,
    run_phases,
    select,
    spec_for,
)
from automation.plan import Workspace
from automation.records import ChangeSummary, Operation, Reason, RunRecord, RunState
from automation.runner import RunRequest
from automation.runstore import FileRunStore
from tests.conftest import REPO


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    shutil.copytree(REPO / "environments", tmp_path / "environments")
    shutil.copytree(
        REPO / "tenants", tmp_path / "tenants", ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return Workspace(tmp_path, "prod")


def test_all_selects_the_platform_and_every_tenant(ws: Workspace) -> None:
    assert select(ws, Selection(all=True)) == ["platform", "tenant-acme", "tenant-dezky"]


def test_tenant_and_stack_selection(ws: Workspace) -> None:
    assert select(ws, Selection(tenants=("acme",), stacks=())) == ["tenant-acme"]
    assert select(ws, Selection(stacks=("platform", "tenant-acme", "platform"))) == [
        "platform",
        "tenant-acme",
    ]


@pytest.mark.parametrize(
    ("selection", "words"),
    [
        (Selection(), "exactly one of"),
        (Selection(all=True, tenants=("acme",)), "exactly one of"),
        (Selection(stacks=("acme",)), "unknown stack 'acme'"),
    ],
)
def test_bad_selections(ws: Workspace, selection: Selection, words: str) -> None:
    with pytest.raises(SelectionError, match=words):
        select(ws, selection)


def test_blast_radius() -> None:
    stacks = ["platform", *(f"tenant-t{i}" for i in range(21))]
    with pytest.raises(SelectionError, match="21 tenant stacks .*--yes-many"):
        check_blast_radius(stacks, 20, yes_many=False)
    check_blast_radius(stacks, 20, yes_many=True)
    check_blast_radius(stacks[:21], 20, yes_many=False)


def test_spec_hash_follows_the_tenant_file(ws: Workspace) -> None:
    before = spec_for(ws, "tenant-acme")
    assert before.tenant is not None and before.tenant.slug == "acme"
    path = ws.root / "tenants" / "acme.yaml"
    path.write_text(path.read_text().replace("plan: pro", "plan: enterprise"))
    assert spec_for(ws, "tenant-acme").spec_hash != before.spec_hash
    assert spec_for(ws, "platform").tenant is None


def _record(request: RunRequest, state: RunState) -> RunRecord:
    reason = None if state is RunState.SUCCEEDED else Reason.UPDATE_FAILED
    return RunRecord(id=request.id, stack=request.stack, operation=request.operation,
                     state=state, requested_by="t", created_at="now", reason=reason)  # fmt: skip


def _requests(operation: Operation, n: int) -> list[RunRequest]:
    stacks = ["platform", *(f"tenant-t{i}" for i in range(n))]
    return [RunRequest(s, operation, "t") for s in stacks]


def test_up_runs_the_platform_first_and_tenants_in_parallel() -> None:
    order: list[str] = []
    running, peak = [0], [0]
    lock = threading.Lock()

    def execute(request: RunRequest) -> RunRecord:
        with lock:
            order.append(request.stack)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return _record(request, RunState.SUCCEEDED)

    records = run_phases(_requests(Operation.UP, 6), execute, parallel=2)
    assert order[0] == "platform" and len(records) == 7
    assert peak[0] == 2  # bounded: never more than --parallel at once


def test_destroy_runs_tenants_before_the_platform() -> None:
    order: list[str] = []
    run_phases(
        _requests(Operation.DESTROY, 2),
        lambda r: (order.append(r.stack), _record(r, RunState.SUCCEEDED))[1],
        1,
    )
    assert order == ["tenant-t0", "tenant-t1", "platform"]


def test_tenants_are_skipped_when_the_platform_up_failed() -> None:
    ran: list[str] = []

    def execute(request: RunRequest) -> RunRecord:
        ran.append(request.stack)
        return _record(
            request, RunState.FAILED if request.stack == "platform" else RunState.SUCCEEDED
        )

    records = run_phases(_requests(Operation.UP, 2), execute, parallel=2)
    assert ran == ["platform"]
    assert [r.message for r in records[1:]] == ["skipped: platform did not succeed"] * 2


def test_three_failures_with_one_spec_stall_until_the_spec_changes(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    request = RunRequest("tenant-acme", Operation.UP, "t")
    for _ in range(3):
        assert not store.health("tenant-acme").stalled("spec-1")
        store.record(_record(request, RunState.FAILED), "spec-1", failed=True)
    assert store.health("tenant-acme").stalled("spec-1")
    assert not store.health("tenant-acme").stalled("spec-2")
    store.record(_record(request, RunState.SUCCEEDED), "spec-2", failed=False)
    assert store.health("tenant-acme").failures == 0
    assert [r.state for r in store.history("tenant-acme")] == [RunState.FAILED] * 3 + [
        RunState.SUCCEEDED
    ]
    assert ChangeSummary.from_engine({"create": 1, "create-replacement": 2}).replace == 2
