"""BackupRepositories under Pulumi's mock runtime: one protected, retained ResticRepository
per (box, source), with the password secret."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.backups import BackupRepositories, BackupRepositoriesArgs, BoxRepositoriesArgs
from tests.components.conftest import Render, unsecret

REPO = "pulumi-python:dynamic/restic:Repository"
SOURCES = ("mail", "files")


def box(
    prefix: str, sources: tuple[str, ...] = SOURCES, outputs: bool = False
) -> BoxRepositoriesArgs:
    """A box's side; with ``outputs`` the users and passwords are Outputs (needs a deployment),
    the passwords secret, as the StorageBoxSubaccount resources and the stack config give them."""
    users = {s: f"{prefix}-sub{i}" for i, s in enumerate(sources, 1)}
    passwords = {s: f"{prefix}-{s}-restic-password" for s in sources}
    return BoxRepositoriesArgs(
        host=f"{prefix}.your-storagebox.de",
        users={s: pulumi.Output.from_input(u) for s, u in users.items()} if outputs else users,
        passwords=(
            {s: pulumi.Output.secret(p) for s, p in passwords.items()} if outputs else passwords
        ),
        known_hosts=f"[{prefix}.your-storagebox.de]:23 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n",
    )


def args(**change: Any) -> BackupRepositoriesArgs:
    values: dict[str, Any] = {
        "sources": SOURCES,
        "boxes": {"backup": box("u1"), "dr": box("u2")},
        "identity_file": "/root/.ssh/restic_ed25519",
    }
    values.update(change)
    return BackupRepositoriesArgs(**values)


def build() -> BackupRepositories:
    boxes = {"backup": box("u1", outputs=True), "dr": box("u2", outputs=True)}
    return BackupRepositories("restic", args(boxes=boxes))


def test_one_protected_retained_repository_per_box_and_source(render: Render) -> None:
    recorder, monitor, seen = render(
        build,
        ("urls",),
        {REPO: {"url": "sftp://x", "repository_id": "f" * 64}},
    )
    repos = {name: inputs for name, (typ, inputs) in recorder.by_name.items() if typ == REPO}
    assert sorted(repos) == [
        "restic-backup-files", "restic-backup-mail", "restic-dr-files", "restic-dr-mail",
    ]  # fmt: skip
    mail = repos["restic-backup-mail"]
    assert (mail["host"], mail["port"], mail["user"], mail["path"]) == (
        "u1.your-storagebox.de", 23, "u1-sub1", "mail",
    )  # fmt: skip
    assert repos["restic-dr-files"]["user"] == "u2-sub2"
    assert mail["identity_file"] == "/root/.ssh/restic_ed25519"
    assert mail["known_hosts"].startswith("[u1.your-storagebox.de]:23 ssh-ed25519 ")
    for name, inputs in repos.items():
        secret, password = unsecret(inputs["password"])
        assert secret, name
        role, source = name.split("-")[1:]
        assert password == f"{'u1' if role == 'backup' else 'u2'}-{source}-restic-password"
    # The monitor keeps the options of the last registration of the type: protect + retain.
    assert monitor.options[REPO]["protect"] is True
    assert monitor.options[REPO]["retain_on_delete"] is True
    assert monitor.options[REPO]["parent"].endswith("$dezky:backup:BackupRepositories::restic")
    assert seen["urls"] == {f"{r}/{s}": "sftp://x" for r in ("backup", "dr") for s in SOURCES}


def test_plain_passwords_are_made_secret(render: Render) -> None:
    recorder, _, _ = render(lambda: BackupRepositories("restic", args()))
    typ, inputs = recorder.by_name["restic-dr-mail"]
    assert typ == REPO
    assert unsecret(inputs["password"]) == (True, "u2-mail-restic-password")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"boxes": {"backup": box("u1")}}, "expected the roles"),
        ({"sources": ("mail", "mail")}, "distinct"),
        ({"sources": ()}, "distinct"),
        ({"boxes": {"backup": box("u1"), "dr": box("u2", ("mail",))}}, r"boxes\[dr\].users"),
        ({"sources": ("mail", "files", "db")}, r"boxes\[backup\].users"),
    ],
)
def test_mismatched_arguments_fail_before_registering(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BackupRepositories("restic", args(**change))
