"""Read a git repository: which paths changed since a ref, and files as they were at it."""

from __future__ import annotations

import subprocess
import tarfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path


class GitError(Exception):
    """git refused: unknown ref, not a repository, or git is missing."""


@dataclass(frozen=True)
class GitRepo:
    root: Path

    def _git(self, *args: str) -> bytes:
        try:
            done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
                ["git", "-C", str(self.root), *args],  # noqa: S607
                capture_output=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise GitError("git is not installed") from exc
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]}: {message[-1] if message else 'failed'}")
        return done.stdout

    def resolve(self, ref: str) -> str:
        """The commit id of ``ref``, or GitError naming the ref."""
        if ref.startswith("-"):
            raise GitError(f"'{ref}' is not a git ref")
        try:
            return (
                self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
            )
        except GitError:
            raise GitError(f"unknown git ref '{ref}'") from None

    def changed_paths(self, commit: str) -> set[str]:
        """Paths that differ between ``commit`` and the work tree, untracked files included."""
        tracked = self._git("diff", "--name-only", "--no-renames", "-z", commit, "--")
        untracked = self._git("ls-files", "--others", "--exclude-standard", "-z")
        return {p for p in (tracked + untracked).decode().split("\0") if p}

    def read(self, commit: str, path: str) -> str | None:
        """Text of ``path`` at ``commit``, or None when it did not exist there."""
        try:
            return self._git("show", f"{commit}:{path}").decode("utf-8", errors="replace")
        except GitError:
            return None

    def list_dir(self, commit: str, directory: str) -> list[str]:
        """Paths of the files directly inside ``directory`` at ``commit``."""
        out = self._git("ls-tree", "--name-only", "-z", commit, f"{directory}/")
        return sorted(p for p in out.decode().split("\0") if p)

    def export(self, commit: str, target: Path) -> None:
        """Write the tree of ``commit`` into ``target`` (which must exist)."""
        archive = self._git("archive", "--format=tar", commit)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
