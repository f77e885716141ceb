"""Live progress and run summaries: progress bars on a terminal, JSON lines for machines,
markdown for a pull-request comment. Nothing here sees a property value or a secret."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from automation.progress import StackEvent
from automation.records import RunRecord

OPS = ("create", "update", "replace", "delete", "same")
SIGN = {"create": "+", "update": "~", "replace": "±", "delete": "-", "same": " "}


class JsonLines:
    """One JSON object per event on stdout (``--json``)."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: StackEvent) -> None:
        with self.lock:
            self.stream.write(event.to_json() + "\n")
            self.stream.flush()


class Bars:
    """A progress bar per stack, with changing steps printed above the bars."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: StackEvent) -> None:
        with self.lock:
            task = self.tasks.get(event.stack)
            if task is None:
                task = self.progress.add_task(event.stack, total=None, status="starting")
                self.tasks[event.stack] = task
            if event.kind == "step":
                self.progress.advance(task)
                self.progress.update(task, status=f"{event.op} {event.name}")
                if event.op not in ("same", "read", "refresh"):
                    sign = SIGN.get(event.op, "!")
                    self.console.print(
                        f"[{event.stack}] {sign} {event.op} {event.type} {event.name}",
                        markup=False,
                        highlight=False,
                    )
            elif event.kind == "diagnostic":
                self.console.print(
                    f"[{event.stack}] {event.op}: {event.message}", markup=False, highlight=False
                )
            elif event.kind == "done":
                self.progress.update(task, total=1, completed=1, status=event.op)


def summary_markdown(records: Sequence[RunRecord]) -> str:
    lines = [
        "| stack | operation | result | + | ~ | ± | - | = | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        s = r.summary
        note = r.message.replace("|", "\\|").replace("\n", " ")[:200]
        if r.drifted:
            note = "drifted: " + ", ".join(r.drifted)
        lines.append(
            f"| `{r.stack}` | {r.operation.value} | {r.state.value}"
            f"{f' ({r.reason.value})' if r.reason else ''} | {s.create} | {s.update} "
            f"| {s.replace} | {s.delete} | {s.same} | {note} |"
        )
    return "### dezky-infra runs\n\n" + "\n".join(lines) + "\n"


def summary_text(records: Sequence[RunRecord]) -> str:
    rows = []
    for r in records:
        s = r.summary
        counts = ", ".join(f"{getattr(s, op)} {op}" for op in OPS if getattr(s, op))
        reason = f" {r.reason.value}: {r.message}" if r.reason else ""
        drift = f" drifted: {', '.join(r.drifted)}" if r.drifted else ""
        what = f"{r.operation.value} {r.state.value} ({counts or 'no resources'})"
        rows.append(f"{r.stack}: {what}{reason}{drift}")
    return "\n".join(rows) + "\n"


def summary_json(records: Sequence[RunRecord]) -> str:
    return json.dumps({"runs": [r.model_dump(mode="json") for r in records]})
