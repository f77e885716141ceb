"""ansible-lint over ansible/ (production profile, offline; settings in ansible/.ansible-lint)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    lint = VENV_BIN / "ansible-lint"
    assert lint.exists(), "ansible-lint is missing from the venv: pinned in pyproject's dev extra"
    done = subprocess.run(
        [str(lint), "--offline", "--profile", "production", "--strict"],
        cwd=ANSIBLE,
        # ansible-lint shells out to ansible-config: the venv's bin must be on PATH.
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
