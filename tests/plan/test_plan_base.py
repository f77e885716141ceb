"""`plan --base` on a throw-away git repository: the right stacks, the right changes.

The CLI runs as a subprocess from the temporary repository (PYTHONPATH points at it), so a
change to a component there is real code that both sides of the comparison run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

COPIED = ("automation", "components", "stacks", "tenants", "environments", "ansible", "Pulumi.yaml")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return root


def plan(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONSAFEPATH": "1"}
    argv = [sys.executable, "-m", "automation", "plan", "--base", "main", "--repo", str(repo)]
    return subprocess.run(
        [*argv, *extra], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def plan_json(repo: Path) -> dict[str, Any]:
    done = plan(repo, "--format", "json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def changes(result: dict[str, Any], stack: str) -> dict[str, list[dict[str, Any]]]:
    entry = next(s for s in result["stacks"] if s["stack"] == stack)
    found: dict[str, list[dict[str, Any]]] = entry["changes"]
    return found


def test_adding_a_tenant_creates_only_its_stack(repo: Path) -> None:
    (repo / "tenants" / "globex.yaml").write_text(
        "slug: globex\nname: Globex\nplan: mvp\nadmins: [{email: a@globex.de, name: A}]\n"
    )
    result = plan_json(repo)
    assert [s["stack"] for s in result["stacks"]] == ["tenant-globex"]
    created = {(c["type"], c["name"]) for c in changes(result, "tenant-globex")["create"]}
    assert ("kubernetes:core/v1:ResourceQuota", "k8s-quota") in created
    assert ("authentik:index/group:Group", "identity-members") in created
    assert not any(changes(result, "tenant-globex")[op] for op in ("update", "delete", "replace"))


def test_changing_a_plan_updates_the_quota_in_place(repo: Path) -> None:
    path = repo / "tenants" / "acme.yaml"
    path.write_text(path.read_text().replace("plan: pro", "plan: mvp"))
    result = plan_json(repo)
    assert [s["stack"] for s in result["stacks"]] == ["tenant-acme"]
    updated = {c["name"]: c["fields"] for c in changes(result, "tenant-acme")["update"]}
    assert updated["k8s-quota"]["spec.hard.requests.cpu"] == {"old": "2", "new": "1"}
    assert updated["k8s-quota"]["spec.hard.requests.memory"] == {"old": "4Gi", "new": "2Gi"}
    space = updated["files-space"]["quota_bytes"]
    assert (space["old"], space["new"]) == (250e9, 50e9)  # a quota change is an update
    assert changes(result, "tenant-acme")["delete"] == []
    assert next(s for s in result["stacks"] if s["stack"] == "tenant-acme")["notes"] == []


def test_changing_a_component_affects_every_stack_with_both_sides_own_code(repo: Path) -> None:
    component = repo / "components" / "kubernetes.py"
    component.write_text(
        component.read_text().replace(
            '"pods": str(args.max_pods)', '"pods": str(args.max_pods + 1)'
        )
    )
    result = plan_json(repo)
    assert [s["stack"] for s in result["stacks"]] == ["platform", "tenant-acme", "tenant-dezky"]
    quota = changes(result, "tenant-acme")["update"][0]
    assert quota["name"] == "k8s-quota"
    assert quota["fields"] == {"spec.hard.pods": {"old": "20", "new": "21"}}
    assert changes(result, "platform") == {"create": [], "update": [], "replace": [], "delete": []}


def test_removing_a_tenant_file_keeps_the_stack_and_says_so(repo: Path) -> None:
    (repo / "tenants" / "acme.yaml").unlink()
    done = plan(repo, "--format", "markdown")
    assert done.returncode == 0, done.stderr
    assert "#### `tenant-acme` tenant-acme: tenant file removed, stack kept" in done.stdout
    assert "tenant file removed: nothing is destroyed and all data is kept" in done.stdout
    result = plan_json(repo)
    entry = result["stacks"][0]
    assert (entry["stack"], entry["orphaned"]) == ("tenant-acme", True)
    assert entry["changes"]["delete"] == []


def test_no_change_plans_nothing(repo: Path) -> None:
    done = plan(repo)
    assert (done.returncode, done.stdout) == (0, "no stacks affected\n")


def test_unknown_ref_is_an_operational_error(repo: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "automation", "plan", "--base", "nope", "--repo", str(repo)],
        cwd=repo, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "error: unknown git ref 'nope'\n"


def test_removing_a_mail_domain_keeps_the_mail_and_says_so(repo: Path) -> None:
    path = repo / "tenants" / "acme.yaml"
    path.write_text(path.read_text().replace("mail_domains:\n  - acme-handel.de\n", ""))
    result = plan_json(repo)
    assert [s["stack"] for s in result["stacks"]] == ["tenant-acme"]
    deleted = {(c["type"], c["name"]) for c in changes(result, "tenant-acme")["delete"]}
    assert deleted == {
        ("dezky:mail:MailDomain", "mail-acme-handel.de"),
        ("pulumi-python:dynamic/stalwart:Domain", "mail-acme-handel.de-domain"),
    }
    notes = result["stacks"][0]["notes"]
    assert notes == [
        "removes mail domain acme-handel.de: mail is kept until the tenant is offboarded"
    ]
    markdown = plan(repo, "--format", "markdown").stdout
    assert "**Customer data**" in markdown
    assert "- `tenant-acme`: removes mail domain acme-handel.de: mail is kept" in markdown


def test_plan_base_checks_capacity_when_a_tenant_changes(repo: Path) -> None:
    path = repo / "tenants" / "acme.yaml"
    path.write_text(path.read_text() + "quota:\n  mail_gb: 500\n")
    done = plan(repo)
    assert done.returncode == 2
    assert "admission: tenants' mail quotas add up to 700 GB" in done.stderr


def test_plan_base_checks_capacity_when_the_environment_shrinks(repo: Path) -> None:
    path = repo / "environments" / "prod.yaml"
    path.write_text(path.read_text().replace("mail_gb: 400", "mail_gb: 100"))
    done = plan(repo)
    assert done.returncode == 2
    assert "admission: tenants' mail quotas add up to" in done.stderr
    assert "100 GB" in done.stderr


def test_changing_a_role_re_runs_the_playbook_on_the_platform_only(repo: Path) -> None:
    tasks = repo / "ansible" / "roles" / "base" / "defaults" / "main.yml"
    tasks.write_text(
        tasks.read_text().replace("base_journal_max_use: 2G", "base_journal_max_use: 3G")
    )
    result = plan_json(repo)
    assert [s["stack"] for s in result["stacks"]] == ["platform"]
    updated = {c["name"]: c["fields"] for c in changes(result, "platform")["update"]}
    assert list(updated) == ["host-ansible"]
    old, new = (
        updated["host-ansible"]["triggers"]["old"],
        updated["host-ansible"]["triggers"]["new"],
    )
    assert (old[0] != new[0], old[1] == new[1]) == (True, True)  # the tree, not the vars
