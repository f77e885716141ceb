"""Problems found in tenant files, each pointing at a file, a line and a column.

``Problem`` is one finding; ``SpecError`` carries every problem of a validation at once so
that a person fixes them all in one round. Nothing here decides about retries: a spec
problem is permanent until the file changes (automation.errors classifies it).
"""

from __future__ import annotations

from dataclasses import dataclass

FILE_FIELD = "file"


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: ``path:line:col: field: message`` with 1-based line and column."""

    path: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.field}: {self.message}"


class SpecError(Exception):
    """Tenant files are invalid; ``problems`` lists every finding, sorted by file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
