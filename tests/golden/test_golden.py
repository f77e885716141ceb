"""Golden cases: a tenant file in, the resources its stack declares out (mock runtime).

Each folder under cases/ holds ``tenant.yaml`` (none for the platform stack),
optionally ``environment`` (its name; default prod), and ``expected.json``. After an
intended change, regenerate with ``UPDATE_GOLDEN=1 make unit`` and review the diff of
expected.json like code.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from automation.render import render
from components.host import tree_digest
from stacks.program import StackInputs
from tenants.environment import load_environment
from tenants.loader import parse_tenant
from tests.conftest import REPO

CASES = Path(__file__).parent / "cases"
# The playbooks' digest changes with every edit under ansible/; the golden names it instead.
ANSIBLE_TREE = "<digest of ansible/>"


def _named_digests(rendered: list[dict[str, object]]) -> list[dict[str, object]]:
    text = json.dumps(rendered, ensure_ascii=False)
    return list(json.loads(text.replace(tree_digest(REPO / "ansible"), ANSIBLE_TREE)))


def _inputs(case: Path) -> StackInputs:
    env_file = case / "environment"  # optional: the environment's name (default prod)
    name = env_file.read_text().strip() if env_file.exists() else "prod"
    environment = load_environment(REPO / "environments" / f"{name}.yaml")
    spec = case / "tenant.yaml"
    if not spec.exists():
        return StackInputs.for_platform(environment)
    tenant = parse_tenant(spec.read_text(encoding="utf-8"), str(spec)).tenant
    return StackInputs.for_tenant(tenant, environment)


@pytest.mark.parametrize("case", sorted(CASES.iterdir()), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    rendered = _named_digests([asdict(r) for r in render(_inputs(case)).resources])
    expected_path = case / "expected.json"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(rendered, indent=2, ensure_ascii=False) + "\n")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert rendered == expected


def test_stacks_rendered_in_one_process_do_not_leak_into_each_other() -> None:
    cases = sorted(c for c in CASES.iterdir() if (c / "tenant.yaml").exists())
    first = [r.name for r in render(_inputs(cases[0])).resources]
    for case in cases[1:]:
        render(_inputs(case))
    assert [r.name for r in render(_inputs(cases[0])).resources] == first
