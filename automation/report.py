"""Plans as text for a terminal, JSON for machines and markdown for a pull-request comment."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from automation.diff import ResourceChange
from automation.plan import Plan, StackPlan

SYMBOL = {"create": "+", "update": "~", "replace": "±", "delete": "-"}
OPS = ("create", "update", "replace", "delete")


def to_json(plan: Plan) -> str:
    stacks: list[dict[str, Any]] = []
    for sp in plan.stacks:
        entry: dict[str, Any] = {
            "stack": sp.stack,
            "title": sp.title,
            "resources": [asdict(r) for r in sp.resources],
        }
        if sp.changes is not None:
            entry["changes"] = {
                op: [_change_json(c) for c in sp.changes.changes if c.op == op] for op in OPS
            }
            entry["notes"] = list(sp.notes)
            entry["orphaned"] = sp.orphaned
        stacks.append(entry)
    return json.dumps(
        {"environment": plan.environment, "base": plan.base, "stacks": stacks}, indent=2
    )


def _change_json(change: ResourceChange) -> dict[str, Any]:
    out: dict[str, Any] = {"type": change.resource.type, "name": change.resource.name}
    if change.fields:
        out["fields"] = {f.path: {"old": f.old, "new": f.new} for f in change.fields}
    return out


def _value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _field_lines(change: ResourceChange, indent: str) -> list[str]:
    return [f"{indent}{f.path}: {_value(f.old)} → {_value(f.new)}" for f in change.fields]


def to_text(plan: Plan) -> str:
    lines: list[str] = []
    for sp in plan.stacks:
        lines.append(f"{sp.stack} ({sp.title}): {_summary(sp)}")
        if sp.changes is None:
            lines += [
                f"  {r.type}  {r.name}" + ("  [protected]" if r.protect else "")
                for r in sp.resources
            ]
        else:
            for change in sp.changes.changes:
                res = change.resource
                lines.append(f"  {SYMBOL[change.op]} {change.op:<7} {res.type}  {res.name}")
                lines += _field_lines(change, "        ")
        lines += [f"  ! {note}" for note in sp.notes]
    if not plan.stacks:
        lines.append("no stacks affected")
    return "\n".join(lines) + "\n"


def _summary(sp: StackPlan) -> str:
    if sp.changes is None:
        return f"{len(sp.resources)} resources"
    if sp.orphaned:
        return "tenant file removed, stack kept"
    if sp.changes.empty:
        return "no changes"
    return ", ".join(f"{sp.changes.count(op)} to {op}" for op in OPS if sp.changes.count(op))


def to_markdown(plan: Plan) -> str:
    head = f"### dezky-infra plan ({plan.environment})"
    if plan.base is None:
        lines = [head, "", "| stack | resources |", "|---|---|"]
        lines += [f"| `{sp.stack}` {sp.title} | {len(sp.resources)} |" for sp in plan.stacks]
        return "\n".join(lines) + "\n"
    changed = [sp for sp in plan.stacks if sp.orphaned or (sp.changes and not sp.changes.empty)]
    lines = [
        head,
        "",
        f"Compared with `{plan.base}`: {len(changed)} of {len(plan.stacks)} affected stacks "
        "change.",
    ]
    data = [(sp, n) for sp in plan.stacks for n in sp.notes]
    if data:
        lines += ["", "**Customer data**", ""] + [f"- `{sp.stack}`: {n}" for sp, n in data]
    for sp in changed:
        lines += ["", f"#### `{sp.stack}` {sp.title}: {_summary(sp)}", ""]
        if sp.changes is not None and not sp.changes.empty:
            lines += ["```diff"]
            for change in sp.changes.changes:
                sign = {"create": "+", "delete": "-"}.get(change.op, "!")
                lines.append(f"{sign} {change.op} {change.resource.type} {change.resource.name}")
                lines += _field_lines(change, "#   ")
            lines += ["```"]
    return "\n".join(lines) + "\n"
