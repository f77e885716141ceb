"""`dezky-infra preview|up|drift|recover` as a person or CI runs them: a subprocess, real
signals, exit codes, JSON lines and the summary file. The engine is the fake CLI installed
where the project installs the pinned CLI (.state/pulumi-cli/<version>)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from automation.settings import PULUMI_CLI_VERSION
from tests.fakes.pulumi_cli import install_fake_pulumi, read_calls, stack_lock_dir
from tests.runs.conftest import make_repo

NS = "kubernetes:core/v1:Namespace"
STEPS = [{"op": "create", "type": NS, "name": "k8s-namespace"}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def install(repo: Path, scenario: dict[str, Any]) -> Path:
    return install_fake_pulumi(repo / ".state" / "pulumi-cli" / PULUMI_CLI_VERSION, scenario)


def cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "PULUMI_CONFIG_PASSPHRASE": "correct horse",
        "DEZKY_INSTALL_PULUMI": "0",
        "AUTHENTIK_TOKEN": "tok-never-printed",
        **(env or {}),
    }
    return subprocess.Popen([sys.executable, "-m", "automation", *args, "--repo", str(repo)],
                            cwd=repo, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_up_prints_json_lines_and_writes_the_summary(repo: Path) -> None:
    install(repo, {"stacks": {"*": {"steps": STEPS}}})
    summary = repo / "summary.md"
    code, out, err = finish(cli(repo, "up", "--all", "--json", "--summary-file", str(summary)))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["stack"] for e in events} == {"platform", "tenant-acme", "tenant-dezky"}
    first_tenant = min(i for i, e in enumerate(events) if e["stack"] != "platform")
    assert all(e["kind"] != "step" or e["stack"] != "platform" for e in events[first_tenant:])
    assert "| `tenant-acme` | up | succeeded | 1 | 0 | 0 | 0 | 0 |" in summary.read_text()
    assert "tok-never-printed" not in out + err + summary.read_text()


def test_drift_exits_3_and_names_the_resource(repo: Path) -> None:
    drift = [{"op": "update", "type": NS, "name": "k8s-namespace"}]
    install(repo, {"stacks": {"*": {"steps": [{**STEPS[0], "op": "same"}], "drift": drift}}})
    code, out, err = finish(cli(repo, "drift", "--tenant", "acme"))
    assert code == 3, err
    assert f"tenant-acme: drift succeeded (1 update, 1 same) drifted: {NS}::k8s-namespace" in out


def test_too_many_tenants_need_yes_many(repo: Path) -> None:
    install(repo, {"stacks": {"*": {"steps": STEPS}}})
    code, _, err = finish(cli(repo, "up", "--all", "--max-tenants", "1"))
    assert code == 2
    assert "would touch 2 tenant stacks" in err
    assert read_calls(repo / ".state" / "pulumi-cli" / PULUMI_CLI_VERSION) == []


def test_missing_engine_is_reported_not_raised(repo: Path) -> None:
    install(repo, {"missing": True})
    code, out, err = finish(cli(repo, "preview", "--tenant", "acme", "--json"))
    assert code == 8
    assert "EngineMissing" not in err and "Traceback" not in err
    done = [json.loads(line) for line in out.splitlines() if '"done"' in line]
    assert "DEZKY_INSTALL_PULUMI=0 forbids installing it" in done[0]["message"]


def test_sigterm_mid_run_cancels_cleanly(repo: Path) -> None:
    steps = [{"op": "create", "type": NS, "name": f"ns-{i}"} for i in range(7)]
    root = install(repo, {"stacks": {"*": {"steps": steps, "step_seconds": 0.5}}})
    process = cli(repo, "up", "--tenant", "acme", "--json")
    deadline = time.monotonic() + 60
    while (
        not any(c["argv"][1:2] == ["up"] for c in read_calls(root)) and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    time.sleep(0.8)  # a step or two in flight
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 130, err
    done = [json.loads(line) for line in out.splitlines() if '"kind": "done"' in line]
    assert done[-1]["op"] == "cancelled"
    steps = [line for line in out.splitlines() if '"kind": "step"' in line]
    assert 2 <= len([s for s in steps if '"op": "create"' in s]) < 7 + 7  # stopped early
    assert (
        list(
            stack_lock_dir(repo / ".state" / "backend", "dezky-infra", "tenant-acme").glob("*.json")
        )
        == []
    )
    assert not (repo / ".state" / "locks" / "tenant-acme.json").exists()
    history = (repo / ".state" / "runs" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["state"] == "cancelled"


def test_an_unknown_base_ref_is_an_error_not_a_bug(repo: Path) -> None:
    install(repo, {"stacks": {"*": {"steps": STEPS}}})
    code, _, err = finish(cli(repo, "preview", "--base", "no-such-ref"))
    assert code == 1
    assert "unknown git ref 'no-such-ref'" in err and "bug" not in err


def test_destroy_needs_the_flag(repo: Path) -> None:
    path = repo / "tenants" / "acme.yaml"
    path.write_text(path.read_text() + "status: offboarding\n")
    root = install(repo, {"stacks": {"*": {"steps": STEPS}}})
    code, out, err = finish(cli(repo, "destroy", "--tenant", "acme"))
    assert code == 9, err
    assert "needs --allow-data-loss" in out
    assert not any("destroy" in c["argv"] for c in read_calls(root))
