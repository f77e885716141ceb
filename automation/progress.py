"""Engine events turned into what people and machines watch: one line per step, per stack.

Only the operation, the resource type and its logical name leave this module: property values
(which may hold secrets the engine has not masked) never do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pulumi.automation import events

# Step operations that change something; "same", "read" and "refresh" do not.
CHANGING_OPS = frozenset(
    {"create", "update", "delete", "replace", "create-replacement", "delete-replaced", "import"}
)


@dataclass(frozen=True)
class StackEvent:
    """One thing that happened during a run, safe to print, store and stream."""

    stack: str
    kind: str  # start | step | diagnostic | summary | done
    op: str = ""
    type: str = ""
    name: str = ""
    message: str = ""
    at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v != ""}, sort_keys=True)


Sink = Callable[[StackEvent], None]


@dataclass
class StepLog:
    """The steps the engine announced in one operation, for guard rails and drift reports."""

    steps: list[StackEvent] = field(default_factory=list)

    @property
    def changing(self) -> list[StackEvent]:
        return [s for s in self.steps if s.op in CHANGING_OPS]


def translate(stack: str, sink: Sink, log: StepLog) -> Callable[[events.EngineEvent], None]:
    """An ``on_event`` callback that records steps in ``log`` and forwards safe events."""

    def on_event(event: events.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata is not None:
            meta = pre.metadata
            op = str(getattr(meta.op, "value", meta.op))
            name = meta.urn.rsplit("::", 1)[-1]
            step = StackEvent(stack, "step", op=op, type=meta.type, name=name)
            log.steps.append(step)
            sink(step)
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity in ("error", "warning"):
            message = diagnostic.message.strip()[:500]
            sink(StackEvent(stack, "diagnostic", op=diagnostic.severity, message=message))
        summary = event.summary_event
        if summary is not None:
            counts: dict[str, Any] = {
                str(getattr(k, "value", k)): v for k, v in summary.resource_changes.items()
            }
            sink(StackEvent(stack, "summary", message=json.dumps(counts, sort_keys=True)))

    return on_event
