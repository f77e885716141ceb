"""The fake ``pulumi`` executable, driven only through the real ``pulumi.automation`` SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pulumi.automation as auto
import pytest
from pulumi.automation.events import EngineEvent, OpType

from tests.fakes.pulumi_cli import (
    install_fake_pulumi,
    plant_lock,
    read_calls,
    read_stack_state,
    stack_lock_dir,
    write_scenario,
)

PROJECT = "dezky-infra"
SERVER = "hcloud:index/server:Server"
NETWORK = "hcloud:index/network:Network"
KEY = "hcloud:index/sshKey:SshKey"
T = TypeVar("T")


def urn(name: str, type_: str = SERVER, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def steps(*names: str, op: str = "create") -> list[dict[str, Any]]:
    return [{"op": op, "type": SERVER, "name": name} for name in names]


class Env:
    """A fake engine under ``tmp/fake``, a work dir and a ``file://`` backend in ``tmp/state``."""

    def __init__(self, tmp: Path, scenario: dict[str, Any]) -> None:
        self.tmp = tmp
        self.root = install_fake_pulumi(tmp / "fake", scenario)
        self.state = tmp / "state"
        self.work = tmp / "work"
        self.work.mkdir()

    def options(self, env_vars: dict[str, str] | None = None) -> auto.LocalWorkspaceOptions:
        return auto.LocalWorkspaceOptions(
            work_dir=str(self.work),
            pulumi_command=auto.PulumiCommand(root=str(self.root)),
            project_settings=auto.ProjectSettings(
                name=PROJECT,
                runtime="python",
                backend=auto.ProjectBackend(url=f"file://{self.state}"),
            ),
            secrets_provider="passphrase",
            env_vars={"PULUMI_CONFIG_PASSPHRASE": "x"} if env_vars is None else env_vars,
        )

    def stack(self, name: str = "dev") -> auto.Stack:
        return auto.create_or_select_stack(
            stack_name=name, work_dir=str(self.work), opts=self.options()
        )

    def latest(self, name: str = "dev") -> dict[str, Any]:
        return read_stack_state(self.state, PROJECT, name)

    def urns(self, name: str = "dev") -> list[str]:
        return [r["urn"] for r in self.latest(name)["resources"] if r.get("custom", True)]

    def locks(self, name: str = "dev") -> list[Path]:
        lock_dir = stack_lock_dir(self.state, PROJECT, name)
        return sorted(lock_dir.iterdir()) if lock_dir.is_dir() else []

    def pid_of(self, command: str) -> int | None:
        calls = [c for c in read_calls(self.root) if command in c["argv"]]
        return calls[-1]["pid"] if calls else None


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {probe}")


class Background:
    """Runs a stack operation in a thread; ``join`` returns its result or the error raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        self.outcome: Any = None
        self._target = target
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.outcome = self._target()
        except Exception as exc:  # handed to the test
            self.outcome = exc

    def join(self) -> Any:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return self.outcome


def kinds(events: list[EngineEvent]) -> list[str]:
    names = []
    for event in events:
        fields = {k: v for k, v in vars(event).items() if k not in ("sequence", "timestamp")}
        names.extend(k for k, v in fields.items() if v is not None)
    return names


def pending_urn(env: Env, expected: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            pending = env.latest().get("pending_operations", [])
        except (OSError, ValueError):  # the fake replaces the file atomically; be safe anyway
            return False
        return any(p["resource"]["urn"] == expected for p in pending)

    return probe


@pytest.fixture(autouse=True)
def _own_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend comes from each test's Pulumi.yaml, not from the caller's environment."""
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)


# ---------------------------------------------------------------------------------------------


def test_version_check_and_missing_engine(tmp_path: Path) -> None:
    root = install_fake_pulumi(tmp_path / "ok", {})
    assert str(auto.PulumiCommand(root=str(root)).version) == "3.257.0"

    old = install_fake_pulumi(tmp_path / "old", {"version": "2.30.0"})
    with pytest.raises(auto.InvalidVersionError):
        auto.PulumiCommand(root=str(old))

    missing = install_fake_pulumi(tmp_path / "missing", {"missing": True})
    with pytest.raises(subprocess.CalledProcessError) as info:
        auto.PulumiCommand(root=str(missing))
    assert info.value.returncode == 127


def test_create_or_select_and_preview_events_in_order(tmp_path: Path) -> None:
    scenario = {
        "stacks": {
            "dev": {
                "steps": [
                    {"op": "create", "type": SERVER, "name": "web"},
                    {"op": "update", "type": NETWORK, "name": "net", "diffs": ["ipRange"]},
                    {"op": "same", "type": KEY, "name": "key"},
                ]
            }
        }
    }
    env = Env(tmp_path, scenario)
    stack = env.stack()
    stack.set_all_config({"region": auto.ConfigValue("fsn1"), "tok": auto.ConfigValue("t", True)})
    events: list[EngineEvent] = []

    result = stack.preview(on_event=events.append)

    assert result.change_summary == {"create": 1, "update": 1, "same": 1}
    assert kinds(events) == [
        "prelude_event",
        *["resource_pre_event", "res_outputs_event"] * 3,
        "summary_event",
        "cancel_event",
    ]
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert events[0].prelude_event is not None
    assert events[0].prelude_event.config == {
        f"{PROJECT}:region": "fsn1",
        f"{PROJECT}:tok": "[secret]",
    }
    pre = [e.resource_pre_event for e in events if e.resource_pre_event]
    assert [(p.metadata.op, p.metadata.urn, p.planning) for p in pre] == [
        (OpType.CREATE, urn("web"), True),
        (OpType.UPDATE, urn("net", NETWORK), True),
        (OpType.SAME, urn("key", KEY), True),
    ]
    assert pre[1].metadata.diffs == ["ipRange"]
    assert pre[1].metadata.detailed_diff["ipRange"].diff_kind.value == "update"
    assert env.urns() == []  # a preview writes no state
    assert env.locks() == []

    # Selecting an existing stack does not init it again.
    env.stack()
    argvs = [c["argv"] for c in read_calls(env.root)]
    assert ["--non-interactive", "stack", "select", "--stack", "dev"] in argvs
    inits = [a for a in argvs if a[1:3] == ["stack", "init"]]
    assert inits == [
        ["--non-interactive", "stack", "init", "dev", "--secrets-provider", "passphrase"]
    ]
    preview_argv = next(a for a in argvs if "preview" in a)
    assert preview_argv[preview_argv.index("--event-log") + 1].startswith("tcp://127.0.0.1:")
    workspace_calls = [c for c in read_calls(env.root) if c["argv"] != ["version"]]
    assert {c["env"].get("PULUMI_CONFIG_PASSPHRASE") for c in workspace_calls} == {"<set>"}


def test_up_outputs_history_then_destroy(tmp_path: Path) -> None:
    scenario = {
        "stacks": {
            "dev": {
                "steps": [*steps("web", "db"), {"op": "replace", "type": KEY, "name": "key"}],
                "outputs": {"ip": "203.0.113.10", "password": "hunter2"},
                "secret_outputs": ["password"],
            }
        }
    }
    env = Env(tmp_path, scenario)
    stack = env.stack()
    events: list[EngineEvent] = []

    up = stack.up(on_event=events.append, message="tenant acme")

    assert up.summary.result == "succeeded"
    assert up.summary.kind == "update"
    assert up.summary.message == "tenant acme"
    assert up.summary.resource_changes == {"create": 2, "replace": 1}
    assert up.outputs["ip"].value == "203.0.113.10"
    assert not up.outputs["ip"].secret
    assert (up.outputs["password"].value, up.outputs["password"].secret) == ("hunter2", True)
    ops = [e.resource_pre_event.metadata.op for e in events if e.resource_pre_event]
    assert ops[2:] == [OpType.CREATE_REPLACEMENT, OpType.REPLACE, OpType.DELETE_REPLACED]
    assert env.urns() == [urn("web"), urn("db"), urn("key", KEY)]
    assert env.latest()["pending_operations"] == []
    assert env.locks() == []
    assert "+ 2 created" in up.stdout

    destroyed = stack.destroy()

    assert destroyed.summary.kind == "destroy"
    assert destroyed.summary.resource_changes == {"delete": 3}
    assert env.latest()["resources"] == []
    assert stack.outputs() == {}
    assert [h.kind for h in stack.history()] == ["destroy", "update"]


def test_locked_stack_is_a_concurrent_update_until_cancelled(tmp_path: Path) -> None:
    env = Env(tmp_path, {"stacks": {"dev": {"steps": steps("web")}}})
    stack = env.stack()
    lock = plant_lock(env.state, PROJECT, "dev", pid=4242, username="ci", hostname="runner-1")

    with pytest.raises(auto.ConcurrentUpdateError) as info:
        stack.up()

    text = str(info.value)
    assert "error: the stack is currently locked by 1 lock(s). Either wait for the other " in text
    assert f"file://{lock}: created by ci@runner-1 (pid 4242) at " in text
    assert env.locks() == [lock]
    assert stack.preview().change_summary == {"create": 1}  # preview takes no lock
    with pytest.raises(auto.ConcurrentUpdateError):
        stack.refresh()

    stack.cancel()

    assert env.locks() == []
    assert stack.up().summary.result == "succeeded"


def test_second_up_is_rejected_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    env = Env(tmp_path, {"stacks": {"dev": {"steps": steps("a", "b"), "step_seconds": 0.5}}})
    stack = env.stack()
    first = Background(stack.up)
    wait_for(env.locks)
    holder = env.pid_of("up")
    [listed] = stack.workspace.list_stacks()
    assert (listed.name, listed.update_in_progress) == ("dev", True)

    with pytest.raises(auto.ConcurrentUpdateError, match=rf"\(pid {holder}\) at "):
        stack.up()

    assert first.join().summary.result == "succeeded"
    assert env.locks() == []
    assert env.urns() == [urn("a"), urn("b")]


def test_sigterm_finishes_the_step_in_flight_then_cancels(tmp_path: Path) -> None:
    env = Env(tmp_path, {"stacks": {"dev": {"steps": steps("a", "b", "c"), "step_seconds": 0.8}}})
    stack = env.stack()
    events: list[EngineEvent] = []
    run = Background(lambda: stack.up(on_event=events.append))
    wait_for(pending_urn(env, urn("a")))
    pid = env.pid_of("up")
    assert pid is not None
    assert len(env.locks()) == 1

    os.kill(pid, signal.SIGTERM)
    error = run.join()

    assert isinstance(error, auto.CommandError)
    assert not isinstance(error, auto.ConcurrentUpdateError)
    assert "error: update canceled" in str(error)
    assert "code: 255" in str(error)
    assert env.locks() == []
    assert env.latest()["pending_operations"] == []
    assert env.urns() == [urn("a")]  # the step in flight completed; nothing after it ran
    stdout = [e.stdout_event.message for e in events if e.stdout_event]
    assert stdout and stdout[0].startswith("SIGTERM received; cancelling.")
    diags = [e.diagnostic_event for e in events if e.diagnostic_event]
    assert [(d.severity, d.message) for d in diags] == [("error", "update canceled\n")]
    assert kinds(events)[-2:] == ["summary_event", "cancel_event"]
    assert stack.history()[0].result == "failed"


def test_second_signal_terminates_at_once(tmp_path: Path) -> None:
    env = Env(tmp_path, {"stacks": {"dev": {"steps": steps("a"), "step_seconds": 5}}})
    stack = env.stack()
    output: list[str] = []
    run = Background(lambda: stack.up(on_output=output.append))
    wait_for(pending_urn(env, urn("a")))
    pid = env.pid_of("up")
    assert pid is not None
    started = time.monotonic()

    os.kill(pid, signal.SIGINT)
    wait_for(lambda: any(line.startswith("^C received; cancelling.") for line in output))
    os.kill(pid, signal.SIGINT)
    error = run.join()

    assert time.monotonic() - started < 3
    assert isinstance(error, auto.CommandError)
    assert "^C received; terminating" in str(error)
    assert env.locks() == []
    assert [p["type"] for p in env.latest()["pending_operations"]] == ["creating"]


# The SDK's gRPC Events servicer warns when the engine dies mid-stream (as a real CLI would).
@pytest.mark.filterwarnings("ignore:Error in event stream:UserWarning")
def test_sigkill_leaves_lock_and_pending_create_until_cancel_and_refresh(tmp_path: Path) -> None:
    env = Env(tmp_path, {"stacks": {"dev": {"steps": steps("a", "b"), "step_seconds": 2}}})
    stack = env.stack()
    killed_run: list[EngineEvent] = []
    run = Background(lambda: stack.up(on_event=killed_run.append))
    wait_for(pending_urn(env, urn("a")))
    wait_for(lambda: len(killed_run) == 2)  # events stream asynchronously, as from the real CLI
    pid = env.pid_of("up")
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    error = run.join()

    assert isinstance(error, auto.CommandError)
    assert "code: -9" in str(error)
    assert kinds(killed_run) == ["prelude_event", "resource_pre_event"]  # and no cancel event
    [lock] = env.locks()
    assert json.loads(lock.read_text())["pid"] == pid
    pending = env.latest()["pending_operations"]
    assert [(p["type"], p["resource"]["urn"]) for p in pending] == [("creating", urn("a"))]
    with pytest.raises(auto.ConcurrentUpdateError, match=f"pid {pid}"):
        stack.up()

    stack.cancel()
    write_scenario(env.root, {"stacks": {"dev": {"steps": steps("a", "b")}}})
    events: list[EngineEvent] = []
    assert stack.up(on_event=events.append).summary.result == "succeeded"

    [warning] = [e.diagnostic_event for e in events if e.diagnostic_event]
    assert warning.severity == "warning"
    assert "with 1 pending operations from previous deployment." in warning.message
    assert f"* {urn('a')}, interrupted while creating" in warning.message
    assert len(env.latest()["pending_operations"]) == 1  # pending CREATEs survive an update
    stack.refresh()
    assert len(env.latest()["pending_operations"]) == 1  # non-interactive: skipped, not cleared

    stack.refresh(clear_pending_creates=True)

    assert env.latest()["pending_operations"] == []
    assert env.locks() == []


def test_failing_step_reports_the_message_and_releases_the_lock(tmp_path: Path) -> None:
    scenario = {
        "stacks": {
            "dev": {
                "steps": steps("a", "b", "c"),
                "fail": {"at_step": 1, "message": "server_limit_exceeded (422)"},
            }
        }
    }
    env = Env(tmp_path, scenario)
    stack = env.stack()
    assert stack.preview().change_summary == {"create": 3}  # fails on up only, by default
    events: list[EngineEvent] = []

    with pytest.raises(auto.CommandError) as info:
        stack.up(on_event=events.append)

    assert not isinstance(info.value, auto.ConcurrentUpdateError)
    assert "error: server_limit_exceeded (422)" in str(info.value)
    diags = [e.diagnostic_event for e in events if e.diagnostic_event]
    assert [(d.severity, d.message, d.urn) for d in diags] == [
        ("error", "server_limit_exceeded (422)\n", urn("b")),
        ("error", "update failed\n", ""),
    ]
    failed = [e.res_op_failed_event for e in events if e.res_op_failed_event]
    assert [f.metadata.urn for f in failed] == [urn("b")]
    summary = next(e.summary_event for e in events if e.summary_event)
    assert summary.resource_changes == {"create": 1}
    assert kinds(events)[-1] == "cancel_event"
    assert env.urns() == [urn("a")]
    assert env.latest()["pending_operations"] == []
    assert env.locks() == []
    assert stack.history()[0].result == "failed"


def test_expect_no_changes_and_drift(tmp_path: Path) -> None:
    scenario = {
        "stacks": {
            "dev": {"steps": steps("web", op="same")},
            "tenant-*": {
                "steps": steps("web"),
                "drift": [{"op": "update", "type": SERVER, "name": "web", "diffs": ["labels"]}],
            },
        }
    }
    env = Env(tmp_path, scenario)
    clean = env.stack("dev")
    assert clean.preview(expect_no_changes=True).change_summary == {"same": 1}

    drifted = env.stack("tenant-acme")
    with pytest.raises(
        auto.CommandError, match="no changes were expected but changes were proposed"
    ):
        drifted.preview(expect_no_changes=True)
    with pytest.raises(auto.CommandError, match="no changes were expected but changes occurred"):
        drifted.preview_refresh(expect_no_changes=True)
    assert drifted.preview(refresh=True).change_summary == {"update": 1, "create": 1}


def test_file_event_log_for_older_clis(tmp_path: Path) -> None:
    env = Env(tmp_path, {"version": "3.200.0", "stacks": {"dev": {"steps": steps("web")}}})
    stack = env.stack()
    events: list[EngineEvent] = []
    started = time.monotonic()

    result = stack.preview(on_event=events.append)

    assert time.monotonic() - started < 3  # the cancel event ended the SDK's log watcher
    assert result.change_summary == {"create": 1}
    assert kinds(events)[-1] == "cancel_event"
    argv = next(c["argv"] for c in read_calls(env.root) if "preview" in c["argv"])
    assert not argv[argv.index("--event-log") + 1].startswith("tcp://")


def test_missing_passphrase_fails_like_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    env = Env(tmp_path, {})

    with pytest.raises(auto.CommandError, match="passphrase must be set with"):
        auto.create_or_select_stack(
            stack_name="dev", work_dir=str(env.work), opts=env.options(env_vars={})
        )
