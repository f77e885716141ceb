"""Compare what two renderings of a stack declare: created, updated, replaced, deleted.

Offline there is no provider to ask which field forces a replacement, so the fields known to
do so are listed per type here (from the providers' schemas: a Kubernetes object's name and
namespace, a Stalwart domain's name). Everything else changed in place is an update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from automation.render import DeclaredResource

REPLACE_ON: dict[str, frozenset[str]] = {
    "kubernetes:core/v1:Namespace": frozenset({"metadata.name"}),
    "kubernetes:core/v1:ResourceQuota": frozenset({"metadata.name", "metadata.namespace"}),
    "pulumi-python:dynamic/stalwart:Domain": frozenset({"domain"}),
    "authentik:index/flow:Flow": frozenset({"slug"}),
}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceChange:
    """What happens to one resource; ``fields`` is empty for create and delete."""

    op: str  # create | update | replace | delete
    resource: DeclaredResource
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class StackChanges:
    changes: tuple[ResourceChange, ...] = field(default_factory=tuple)

    def count(self, op: str) -> int:
        return sum(1 for c in self.changes if c.op == op)

    @property
    def empty(self) -> bool:
        return not self.changes


def compare(old: tuple[DeclaredResource, ...], new: tuple[DeclaredResource, ...]) -> StackChanges:
    """Changes that take a stack from declaring ``old`` to declaring ``new``."""
    before = {r.key: r for r in old}
    after = {r.key: r for r in new}
    changes: list[ResourceChange] = []
    for key, resource in after.items():
        previous = before.get(key)
        if previous is None:
            changes.append(ResourceChange("create", resource))
            continue
        fields = _field_changes(previous, resource)
        if fields:
            replaces = REPLACE_ON.get(resource.type, frozenset())
            op = "replace" if any(f.path in replaces for f in fields) else "update"
            changes.append(ResourceChange(op, resource, fields))
    changes.extend(ResourceChange("delete", r) for k, r in before.items() if k not in after)
    return StackChanges(tuple(changes))


def _field_changes(old: DeclaredResource, new: DeclaredResource) -> tuple[FieldChange, ...]:
    a, b = _flatten(old.inputs), _flatten(new.inputs)
    fields = [
        FieldChange(p, a.get(p), b.get(p))
        for p in sorted(a.keys() | b.keys())
        if a.get(p) != b.get(p)
    ]
    for option in ("protect", "retain_on_delete", "parent"):
        if getattr(old, option) != getattr(new, option):
            fields.append(FieldChange(f"({option})", getattr(old, option), getattr(new, option)))
    return tuple(fields)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}
