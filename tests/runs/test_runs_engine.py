"""Runs through the real Automation API against the substitute engine (tests/fakes/)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from automation.lease import FileLease
from automation.records import Operation, Reason, RunState
from components.providers._http import RetryableApiError
from tests.fakes.pulumi_cli import plant_lock, read_calls, write_scenario
from tests.runs.conftest import Harness

Build = Callable[[dict[str, Any]], Harness]
DOMAIN = "pulumi-python:dynamic/stalwart:Domain"
NS = "kubernetes:core/v1:Namespace"
STEPS = [
    {"op": "create", "type": NS, "name": "k8s-namespace"},
    {"op": "create", "type": DOMAIN, "name": "mail-acme-handel.de-domain"},
    {"op": "same", "type": "authentik:index/group:Group", "name": "identity-members"},
]


ENGINE_OPS = {"preview", "up", "refresh", "destroy", "cancel"}


def _argv(call: dict[str, Any]) -> list[str]:
    return [a for a in call["argv"] if a != "--non-interactive"]


def _calls(fake: Path, op: str) -> list[dict[str, Any]]:
    return [c for c in read_calls(fake) if _argv(c)[:1] == [op]]


def _ops(fake: Path) -> list[str]:
    return [_argv(c)[0] for c in read_calls(fake) if _argv(c)[:1] and _argv(c)[0] in ENGINE_OPS]


def test_events_become_progress_and_the_summary_becomes_the_record(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    record = h.run("tenant-acme", Operation.UP)
    assert record.state is RunState.SUCCEEDED, record.message
    assert (record.summary.create, record.summary.same) == (2, 1)
    steps = [(e.op, e.name) for e in h.events if e.kind == "step" and e.stack == "tenant-acme"]
    assert ("create", "k8s-namespace") in steps and (
        "create",
        "mail-acme-handel.de-domain",
    ) in steps
    assert [e.kind for e in h.events][0] == "start" and h.events[-1].kind == "done"
    assert _ops(h.fake) == ["preview", "up"]  # up previews first, for the guard rails
    assert not (h.settings.locks_dir / "tenant-acme.json").exists()


def test_pulumi_lock_is_an_update_conflict_retried_then_failed(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    h.run("tenant-acme", Operation.UP)
    plant_lock(h.backend, "dezky-infra", "tenant-acme", pid=999999, hostname="ci-runner-7")
    record = h.run("tenant-acme", Operation.UP)
    assert (record.state, record.reason, record.attempt) == (
        RunState.FAILED,
        Reason.UPDATE_CONFLICT,
        3,
    )
    assert "currently locked" in record.message
    assert len(h.sleeps) == 2 and all(0 < s <= 60 for s in h.sleeps)  # capped backoff


def test_a_busy_stack_fails_at_once_or_waits(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    other = FileLease(h.settings.locks_dir, "tenant-acme", "run-other", "up", 30)
    other.acquire()
    try:
        record = h.run("tenant-acme", Operation.PREVIEW)
        assert record.reason is Reason.UPDATE_CONFLICT
        assert "stack tenant-acme is being updated by run run-other (up, pid" in record.message
        threading.Timer(0.5, other.release).start()
        waited = h.run("tenant-acme", Operation.PREVIEW, wait=10)
        assert waited.state is RunState.SUCCEEDED
    finally:
        other.release()


def test_guard_rails_refuse_deleting_a_mail_domain_before_anything_is_applied(
    harness: Build,
) -> None:
    steps = [{"op": "delete", "type": DOMAIN, "name": "mail-acme-handel.de-domain"}]
    h = harness({"stacks": {"tenant-acme": {"steps": steps}}})
    record = h.run("tenant-acme", Operation.UP, allow_data_loss=True)
    assert (record.state, record.reason) == (RunState.FAILED, Reason.DATA_LOSS_REFUSED)
    assert "mail domain mail-acme-handel.de-domain (delete)" in record.message
    assert _ops(h.fake) == ["preview"]  # never reached `up`


def test_destroy_of_an_active_tenant_is_refused(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    record = h.run("tenant-acme", Operation.DESTROY)
    assert record.reason is Reason.DATA_LOSS_REFUSED
    assert "destroy" not in _ops(h.fake)


def test_provider_outage_is_retried_then_the_stack_stalls(harness: Build) -> None:
    fail = {
        "at_step": 0,
        "message": str(RetryableApiError("stalwart", "503 Service Unavailable: POST /jmap/")),
        "ops": ["up"],
    }
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS, "fail": fail}}})
    for _ in range(3):
        record = h.run("tenant-acme", Operation.UP)
        assert (record.reason, record.attempt) == (Reason.PROVIDER_API, 3)
        assert record.message.startswith("stalwart: 503")
    stalled = h.run("tenant-acme", Operation.UP)
    assert (stalled.state, stalled.reason) == (RunState.STALLED, Reason.STALLED)
    # A changed spec lifts the stall.
    path = h.repo / "tenants" / "acme.yaml"
    path.write_text(path.read_text().replace("plan: pro", "plan: enterprise"))
    again = h.run("tenant-acme", Operation.UP)
    assert (again.state, again.attempt) == (RunState.FAILED, 3)
    assert _ops(h.fake).count("up") == 3 * 3 + 3  # nothing ran while stalled


def test_drift_names_the_drifted_resources(harness: Build) -> None:
    drift = [{"op": "update", "type": DOMAIN, "name": "mail-acme-handel.de-domain"}]
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    h.run("tenant-acme", Operation.UP)
    unchanged = [{**step, "op": "same"} for step in STEPS]
    write_scenario(h.fake, {"stacks": {"tenant-acme": {"steps": unchanged, "drift": drift}}})
    record = h.run("tenant-acme", Operation.DRIFT)
    assert record.state is RunState.SUCCEEDED
    assert record.drifted == (f"{DOMAIN}::mail-acme-handel.de-domain",)


def test_parallel_stacks_never_share_a_workspace(harness: Build) -> None:
    from automation.orchestrate import run_phases
    from automation.runner import RunRequest

    h = harness({"stacks": {"*": {"steps": STEPS, "step_seconds": 0.2}}})
    runner = h.runner()
    from automation.orchestrate import spec_for
    from automation.plan import Workspace

    ws = Workspace(h.repo, "prod")
    requests = [
        RunRequest(s, Operation.UP, "t") for s in ("platform", "tenant-acme", "tenant-dezky")
    ]
    records = run_phases(requests, lambda r: runner.execute(r, spec_for(ws, r.stack)), parallel=2)
    assert [r.state for r in records] == [RunState.SUCCEEDED] * 3
    ups = _calls(h.fake, "up")
    by_stack = {c["cwd"]: c for c in ups}
    assert len(by_stack) == 3  # one work directory per stack
    assert all(Path(cwd).name in {"platform", "tenant-acme", "tenant-dezky"} for cwd in by_stack)
    spans = sorted((c["ts"], c["pid"]) for c in ups)
    assert len(spans) == 3


def test_recover_clears_a_dead_runs_lock_and_pending_creates(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    h.run("tenant-acme", Operation.UP)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lock = plant_lock(
        h.backend, "dezky-infra", "tenant-acme", pid=int(dead.stdout), hostname=socket.gethostname()
    )
    import pulumi.automation as auto

    from automation.engine import Engine
    from automation.recover import recover

    engine = Engine(h.settings, auto.PulumiCommand(root=str(h.fake)))
    report = recover(h.settings, engine, "tenant-acme", h.events.append)
    assert not lock.exists()
    assert report.actions[0] == "cleared 1 stale Pulumi lock(s)"
    assert "pending creates cleared" in report.actions[1]
    refresh = _argv(_calls(h.fake, "refresh")[-1])
    assert "--clear-pending-creates" in refresh
    assert h.run("tenant-acme", Operation.UP).state is RunState.SUCCEEDED


def test_recover_refuses_while_the_holder_lives(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    h.run("tenant-acme", Operation.UP)
    lock = plant_lock(
        h.backend, "dezky-infra", "tenant-acme", pid=os.getpid(), hostname=socket.gethostname()
    )
    import pulumi.automation as auto
    import pytest

    from automation.engine import Engine
    from automation.lease import StackBusyError
    from automation.recover import recover

    with pytest.raises(StackBusyError):
        recover(
            h.settings,
            Engine(h.settings, auto.PulumiCommand(root=str(h.fake))),
            "tenant-acme",
            h.events.append,
        )
    assert lock.exists()


def _config_set(fake: Path, stack: str) -> list[str]:
    """The arguments of the last `config set-all` on ``stack``."""
    calls = [_argv(c) for c in read_calls(fake) if _argv(c)[:2] == ["config", "set-all"]]
    mine = [argv for argv in calls if argv[argv.index("--stack") + 1] == stack]
    assert mine, f"no config set-all on {stack}"
    return mine[-1]


ENDPOINTS = {"stalwart_jmap_url": "https://mail.dezky.eu", "ocis_url": "https://files.dezky.eu"}


def test_a_tenant_stack_takes_provider_endpoints_from_the_platform_stack(harness: Build) -> None:
    h = harness({"stacks": {"platform": {"steps": [], "outputs": ENDPOINTS},
                            "tenant-acme": {"steps": STEPS}}})  # fmt: skip
    assert h.run("platform", Operation.UP).state is RunState.SUCCEEDED
    assert h.run("tenant-acme", Operation.UP).state is RunState.SUCCEEDED
    args = _config_set(h.fake, "tenant-acme")
    assert "stalwart:url=https://mail.dezky.eu" in args
    assert "ocis:url=https://files.dezky.eu" in args
    assert not any(a.startswith("stalwart:url") for a in _config_set(h.fake, "platform"))


def test_an_endpoint_named_in_the_environment_wins(harness: Build) -> None:
    h = harness({"stacks": {"platform": {"steps": [], "outputs": ENDPOINTS},
                            "tenant-acme": {"steps": STEPS}}})  # fmt: skip
    h.settings = dataclasses.replace(
        h.settings, provider_config={"stalwart:url": (SecretStr("https://mail.staging"), False)}
    )
    assert h.run("platform", Operation.UP).state is RunState.SUCCEEDED
    assert h.run("tenant-acme", Operation.UP).state is RunState.SUCCEEDED
    args = _config_set(h.fake, "tenant-acme")
    assert "stalwart:url=https://mail.staging" in args
    assert "stalwart:url=https://mail.dezky.eu" not in args
    assert "ocis:url=https://files.dezky.eu" in args


def test_without_a_platform_stack_a_tenant_run_still_starts(harness: Build) -> None:
    h = harness({"stacks": {"tenant-acme": {"steps": STEPS}}})
    assert h.run("tenant-acme", Operation.UP).state is RunState.SUCCEEDED
    assert not any(a.startswith("stalwart:url") for a in _config_set(h.fake, "tenant-acme"))
