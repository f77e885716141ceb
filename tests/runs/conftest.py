"""Runs against a substitute engine: the fake `pulumi` executable driven by the real SDK."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi.automation as auto
import pytest
from pydantic import SecretStr

from automation.engine import Engine
from automation.progress import StackEvent
from automation.records import Operation, RunRecord
from automation.runner import Runner, RunRequest
from automation.runstore import FileRunStore
from automation.settings import Settings
from tests.conftest import REPO
from tests.fakes.pulumi_cli import install_fake_pulumi


@dataclass
class Harness:
    """A throw-away repository, settings, the fake engine and a runner that records events."""

    repo: Path
    settings: Settings
    fake: Path
    events: list[StackEvent] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    sleeps: list[float] = field(default_factory=list)

    @property
    def backend(self) -> Path:
        return self.settings.state_dir / "backend"

    def runner(self) -> Runner:
        engine = Engine(self.settings, auto.PulumiCommand(root=str(self.fake)))
        store = FileRunStore(self.settings.runs_dir)
        return Runner(
            engine, self.settings, store, self.events.append, self.cancel, self.sleeps.append
        )

    def run(self, stack: str, operation: Operation, **kwargs: Any) -> RunRecord:
        from automation.orchestrate import spec_for
        from automation.plan import Workspace

        spec = spec_for(Workspace(self.repo, "prod"), stack)
        return self.runner().execute(RunRequest(stack, operation, "tester", **kwargs), spec)


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "environments", repo / "environments")
    shutil.copytree(
        REPO / "tenants",
        repo / "tenants",
        ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.json"),
    )
    return repo


@pytest.fixture
def harness(tmp_path: Path) -> Callable[[dict[str, Any]], Harness]:
    def build(scenario: dict[str, Any]) -> Harness:
        repo = make_repo(tmp_path)
        settings = Settings(repo=repo, passphrase=SecretStr("correct horse"), lease_seconds=30)
        fake = install_fake_pulumi(tmp_path / "fake", scenario)
        return Harness(repo, settings, fake)

    return build
