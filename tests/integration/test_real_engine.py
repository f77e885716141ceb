"""The engine adapter against the real Pulumi CLI and a file:// backend in a temporary folder.

These run wherever `pulumi` is on PATH (CLI >= 3.256): `make test` runs them there; on the
development machines the CLI cannot be installed, so they are skipped with that reason.
The program is a dynamic resource defined in the program itself, so no plugin is downloaded.
"""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from automation.engine import Engine
from automation.records import Operation, RunRecord, RunState
from automation.runner import Runner, RunRequest, StackSpec
from automation.runstore import FileRunStore
from automation.settings import Settings

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="needs the Pulumi CLI on PATH; it cannot be installed on this machine",
    ),
]

PROGRAM = """
import pulumi
import pulumi.dynamic as dyn


class NoteProvider(dyn.ResourceProvider):
    def create(self, props):
        return dyn.CreateResult(id_="note-1", outs=props)

    def diff(self, _id, olds, news):
        return dyn.DiffResult(changes=olds.get("text") != news.get("text"))

    def read(self, id_, props):
        return dyn.ReadResult(id_=id_, outs=props)


dyn.Resource(NoteProvider(), "note", {"text": "hello"})
pulumi.export("environment", pulumi.Config("dezky").require("environment"))
"""


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "stacks" / "__main__.py").write_text(PROGRAM)
    settings = Settings(
        repo=repo,
        passphrase=SecretStr("integration"),
        plugins={},
        venv=Path(sys.prefix),
        install_cli=False,
    )
    return Runner(Engine(settings), settings, FileRunStore(settings.runs_dir), lambda e: None,
                  threading.Event())  # fmt: skip


def run(runner: Runner, operation: Operation) -> RunRecord:
    record = runner.execute(RunRequest("platform", operation, "it"), StackSpec(None, "h"))
    assert record.state is RunState.SUCCEEDED, record.message
    return record


def test_preview_up_empty_preview_refresh_destroy(runner: Runner) -> None:
    assert run(runner, Operation.PREVIEW).summary.create >= 1
    assert run(runner, Operation.UP).summary.create >= 1
    assert not run(runner, Operation.PREVIEW).summary.changed
    assert not run(runner, Operation.REFRESH).summary.changed
    assert run(runner, Operation.DRIFT).drifted == ()
    # destroy of the platform stack is allowed (tenant stacks need offboarding).
    assert run(runner, Operation.DESTROY).summary.delete >= 1
