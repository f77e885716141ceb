"""The worker executes queued runs through the substitute engine and writes results back."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pulumi.automation as auto
from pydantic import SecretStr
from pymongo.database import Database

from automation.engine import Engine
from automation.lease import FileLease
from automation.mongo import RunStore
from automation.records import Operation, Reason, RunRecord, RunState
from automation.runner import new_run_id, now
from automation.settings import Settings
from automation.worker import Worker
from tests.fakes.pulumi_cli import install_fake_pulumi, read_calls
from tests.runs.conftest import make_repo

STEPS = [
    {"op": "create", "type": "kubernetes:core/v1:Namespace", "name": "k8s-namespace"},
    {"op": "create", "type": "pulumi-python:dynamic/ocis:Space", "name": "files-space"},
]


def setup(
    tmp_path: Path, db: Database[dict[str, Any]], scenario: dict[str, Any]
) -> tuple[RunStore, Worker]:
    repo = make_repo(tmp_path)
    settings = Settings(repo=repo, passphrase=SecretStr("pw"), lease_seconds=3)
    fake = install_fake_pulumi(tmp_path / "fake", scenario)
    store = RunStore(db, timedelta(seconds=3))
    store.ensure_indexes()
    db["tenants"].insert_one({"slug": "acme", "name": "Acme", "status": "pending",
                              "provisioningStatus": {"authentik": "pending"}})  # fmt: skip
    engine = lambda: Engine(settings, auto.PulumiCommand(root=str(fake)))  # noqa: E731
    return store, Worker(store, settings, engine, threading.Event(), name="w-test")


def enqueue(store: RunStore, operation: Operation = Operation.UP) -> RunRecord:
    run = RunRecord(id=new_run_id(), stack="tenant-acme", operation=operation,
                    state=RunState.QUEUED, requested_by="user-1", created_at=now(),
                    tenant="acme")  # fmt: skip
    return store.enqueue(run)[0]


def test_up_runs_streams_events_and_writes_the_tenant_back(
    tmp_path: Path, db: Database[dict[str, Any]]
) -> None:
    outputs = {"files_drive_id": "storage-users-1$abc", "members_group_id": "grp-1"}
    store, worker = setup(tmp_path, db, {"stacks": {"*": {"steps": STEPS, "outputs": outputs}}})
    run = enqueue(store)
    result = worker.run_once()
    assert result is not None and result.state is RunState.SUCCEEDED, result.message
    stored = store.get(run.id)
    assert stored is not None and stored.state is RunState.SUCCEEDED
    assert stored.requested_by == "user-1" and stored.summary.create == 2
    kinds = [e["kind"] for e in store.events_after(run.id, 0)]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("step") == 4  # the guard-rail preview, then the update
    tenant = db["tenants"].find_one({"slug": "acme"})
    assert tenant is not None
    assert tenant["provisioningStatus"] == {
        "authentik": "ok",
        "k8s": "ok",
        "stalwart": "ok",
        "ocis": "ok",
    }
    assert (tenant["status"], tenant["ocisSpaceId"], tenant["authentikGroupId"]) == (
        "active",
        "storage-users-1$abc",
        "grp-1",
    )
    assert tenant["stalwartDomain"] == "acme-handel.de"
    assert worker.run_once() is None  # nothing left


def test_a_provider_failure_marks_that_integration(
    tmp_path: Path, db: Database[dict[str, Any]]
) -> None:
    fail = {"at_step": 1, "message": "ocis: 400 Bad Request: invalidRequest: quota", "ops": ["up"]}
    store, worker = setup(tmp_path, db, {"stacks": {"*": {"steps": STEPS, "fail": fail}}})
    enqueue(store)
    result = worker.run_once()
    assert result is not None and result.reason is Reason.PROVIDER_API
    tenant = db["tenants"].find_one({"slug": "acme"})
    assert tenant is not None
    assert tenant["provisioningStatus"]["ocis"] == "error"
    assert tenant["provisioningStatus"]["authentik"] == "pending"
    assert tenant["provisioningErrors"][0]["integration"] == "ocis"
    assert tenant["status"] == "pending"  # not active until everything settles


def test_a_cancel_request_stops_the_run(tmp_path: Path, db: Database[dict[str, Any]]) -> None:
    slow = [{**s, "seconds": 1.0} for s in STEPS * 3]
    store, worker = setup(tmp_path, db, {"stacks": {"*": {"steps": slow}}})
    run = enqueue(store)
    timer = threading.Timer(2.5, store.request_cancel, args=(run.id,))
    timer.start()
    result = worker.run_once()
    timer.join()
    assert result is not None and result.state is RunState.CANCELLED
    assert store.get(run.id).state is RunState.CANCELLED  # type: ignore[union-attr]


def test_a_cli_run_on_this_machine_keeps_the_worker_off_the_stack(
    tmp_path: Path, db: Database[dict[str, Any]]
) -> None:
    store, worker = setup(tmp_path, db, {"stacks": {"*": {"steps": STEPS}}})
    cli = FileLease(worker.settings.locks_dir, "tenant-acme", "cli-run", "up", 30)
    cli.acquire(0.0)
    try:
        enqueue(store)
        busy = worker.run_once()
        assert busy is not None and busy.reason is Reason.UPDATE_CONFLICT, busy
        assert "cli-run" in busy.message
        assert not [c for c in read_calls(tmp_path / "fake") if c["argv"][:1] == ["up"]]
    finally:
        cli.release()
    enqueue(store)
    done = worker.run_once()
    assert done is not None and done.state is RunState.SUCCEEDED, done.message
