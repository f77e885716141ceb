"""The plain-words notes of removals and replacements, per kind of data-holding resource."""

from __future__ import annotations

from typing import Any

import pytest

from automation.datanotes import notes
from automation.diff import ResourceChange, StackChanges
from automation.render import DeclaredResource

REPO = "pulumi-python:dynamic/restic:Repository"
BOX = "hcloud:index/storageBox:StorageBox"
SPACE = "pulumi-python:dynamic/ocis:Space"
RESTIC = {"host": "u1.your-storagebox.de", "user": "u1-sub3", "path": "mongodb"}

CASES: list[tuple[str, str, dict[str, Any], bool, str]] = [
    ("delete", REPO, RESTIC, True,
     "removes backup repository u1-sub3:mongodb: its snapshots are kept"),
    ("replace", REPO, RESTIC, True,
     "would replace protected backup repository u1-sub3:mongodb: `up` refuses; the data stays"),
    ("delete", BOX, {"name": "dezky-backup-fsn1"}, True,
     "removes Storage Box dezky-backup-fsn1: it is kept at Hetzner (retain on delete)"),
    ("delete", SPACE, {"name": "Acme"}, False, "removes file space Acme: its files are deleted"),
    ("create", REPO, RESTIC, True, ""),
]  # fmt: skip


@pytest.mark.parametrize(("op", "type_", "inputs", "protect", "sentence"), CASES)
def test_notes_say_what_happens_to_the_data(
    op: str, type_: str, inputs: dict[str, Any], protect: bool, sentence: str
) -> None:
    resource = DeclaredResource(type_, "r", None, inputs, protect=protect)
    found = notes(StackChanges((ResourceChange(op, resource),)))
    assert found == ((sentence,) if sentence else ())
