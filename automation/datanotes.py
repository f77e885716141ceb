"""What a change does to customer data, in words for the pull-request comment.

One table, by resource type: what the resource holds and what removing or replacing it means.
Protected resources (protect / retain_on_delete) keep their data when they leave the program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from automation.diff import StackChanges
from automation.render import DeclaredResource


@dataclass(frozen=True)
class DataKind:
    noun: str
    ident: Callable[[dict[str, Any]], str]
    on_remove: str
    kept: str
    # Customer data: `up` refuses to delete or replace it unless the tenant is offboarding
    # and --allow-data-loss is given (automation.guards).
    guarded: bool = False


def _meta_name(inputs: dict[str, Any]) -> str:
    return str(inputs.get("metadata", {}).get("name", "?"))


DATA_KINDS: dict[str, DataKind] = {
    "pulumi-python:dynamic/stalwart:Domain": DataKind(
        "mail domain",
        lambda i: str(i.get("domain", "?")),
        "its mailboxes stop receiving mail and are deleted with the domain",
        "mail is kept until the tenant is offboarded",
        guarded=True,
    ),
    "pulumi-python:dynamic/ocis:Space": DataKind(
        "file space",
        lambda i: str(i.get("name", "?")),
        "its files are deleted",
        "the space is disabled, its files are kept until the tenant is offboarded",
        guarded=True,
    ),
    "hcloud:index/storageBox:StorageBox": DataKind(
        "Storage Box",
        lambda i: str(i.get("name", "?")),
        "every backup on it is deleted",
        "it is kept at Hetzner (retain on delete)",
        guarded=True,
    ),
    "pulumi-python:dynamic/restic:Repository": DataKind(
        "backup repository",
        lambda i: f"{i.get('user', '?')}:{i.get('path', '?')}",
        "its snapshots are deleted",
        "its snapshots are kept",
        guarded=True,
    ),
    "kubernetes:core/v1:Namespace": DataKind(
        "namespace",
        _meta_name,
        "everything running in it and its volumes are deleted",
        "it is kept in the cluster",
    ),
    "authentik:index/group:Group": DataKind(
        "group",
        lambda i: str(i.get("name", "?")),
        "its members lose the access it grants (user accounts are kept)",
        "it is kept in Authentik",
    ),
}


def notes(changes: StackChanges) -> tuple[str, ...]:
    """One sentence per change that removes or replaces something holding data or access."""
    found: list[str] = []
    for change in changes.changes:
        if change.op not in ("delete", "replace"):
            continue
        kind = DATA_KINDS.get(change.resource.type)
        if kind is not None:
            found.append(_sentence(change.op, change.resource, kind))
    return tuple(found)


def _sentence(op: str, resource: DeclaredResource, kind: DataKind) -> str:
    name = kind.ident(resource.inputs)
    if op == "replace":
        if resource.protect:
            return f"would replace protected {kind.noun} {name}: `up` refuses; the data stays"
        return f"replaces {kind.noun} {name}: {kind.on_remove}, then it is created anew"
    kept = resource.protect or resource.retain_on_delete
    return f"removes {kind.noun} {name}: {kind.kept if kept else kind.on_remove}"
