"""The offline plan: what each stack declares and, against a git ref, what would change.

Cost follows the change: with ``base`` only the stacks the change affects are loaded and
rendered. When the code itself changed, the base side is rendered by the base commit's own
code in a subprocess, so a component change shows as the resource changes it causes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydantic

from automation import admission, datanotes
from automation.diff import StackChanges, compare
from automation.gitrepo import GitRepo
from automation.render import DeclaredResource, RenderedStack, render_all
from stacks.naming import PLATFORM_STACK, tenant_slug, tenant_stack
from stacks.program import StackInputs
from tenants.environment import ENVIRONMENTS_DIR, Environment, load_environment
from tenants.loader import TENANT_SUFFIX, TenantFile, load_tenants, parse_tenant, tenant_paths
from tenants.problems import SpecError
from tenants.yamldoc import parse

TENANTS_DIR = "tenants"
# Paths whose change alters every stack's program (code, pinned providers, project file).
CODE_PREFIXES = ("components/", "stacks/", "automation/", "tenants/")
CODE_FILES = frozenset({"pyproject.toml", "requirements.lock", "Pulumi.yaml"})
PLATFORM_PREFIXES = ("ansible/", "stacks/Pulumi.platform")
# Files a program reads while it renders (the playbooks' digest): the base side must read its own.
READ_WHILE_RENDERING = ("ansible/",)


class PlanError(Exception):
    """The plan could not be made (git ref, base rendering); not a problem in tenant files."""


@dataclass(frozen=True)
class StackPlan:
    """One stack's declared resources and, with a base, its changes and data notes."""

    stack: str
    title: str
    resources: tuple[DeclaredResource, ...]
    changes: StackChanges | None = None
    notes: tuple[str, ...] = ()
    orphaned: bool = False


@dataclass(frozen=True)
class Plan:
    environment: str
    base: str | None
    stacks: tuple[StackPlan, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Workspace:
    """Where the desired state lives: the repository and the environment to plan for."""

    root: Path
    environment: str

    @property
    def environment_path(self) -> str:
        return f"{ENVIRONMENTS_DIR}/{self.environment}.yaml"

    def load_environment(self) -> Environment:
        return load_environment(self.root / self.environment_path)


def plan_all(ws: Workspace, workers: int | None = None, only: Iterable[str] = ()) -> Plan:
    """Every stack's declared resources (or only the named stacks), all files validated."""
    environment = ws.load_environment()
    files = load_tenants(tenant_paths(ws.root / TENANTS_DIR), environment.base_domain)
    inputs = [StackInputs.for_platform(environment)]
    inputs += [StackInputs.for_tenant(f.tenant, environment) for f in files]
    wanted = set(only)
    if wanted:
        inputs = [i for i in inputs if i.stack in wanted]
    titles = {tenant_stack(f.tenant.slug): f.tenant.name for f in files}
    rendered = render_all(inputs, workers)
    admission.admit(environment, rendered, admission.usage(f.tenant for f in files))
    return Plan(
        environment.name,
        None,
        tuple(StackPlan(r.stack, titles.get(r.stack, "platform"), r.resources) for r in rendered),
    )


def plan_change(ws: Workspace, base_ref: str, workers: int | None = None) -> Plan:
    """Changes of the stacks affected between ``base_ref`` and the work tree."""
    git = GitRepo(ws.root)
    commit = git.resolve(base_ref)
    changed = git.changed_paths(commit)
    head_env = ws.load_environment()
    base_env = _base_environment(git, commit, ws) or head_env
    stacks = affected_stacks(changed, ws, git, commit)

    head_files = load_tenants(
        [ws.root / TENANTS_DIR / f"{s}{TENANT_SUFFIX}" for s in _slugs(stacks, ws.root)],
        head_env.base_domain,
    )
    head_inputs = [StackInputs.for_tenant(f.tenant, head_env) for f in head_files]
    if PLATFORM_STACK in stacks:
        head_inputs.insert(0, StackInputs.for_platform(head_env))
    head = {r.stack: r for r in render_all(head_inputs, workers)}
    titles = {tenant_stack(f.tenant.slug): f.tenant.name for f in head_files}

    if any(_is_code(p) or p.startswith(READ_WHILE_RENDERING) for p in changed):
        base = _render_base_with_its_code(git, commit, ws, stacks)
    else:
        base = {
            r.stack: r for r in render_all(_base_inputs(git, commit, stacks, base_env), workers)
        }

    usage = _fleet_usage(ws, head_env, changed, head_files)
    admission.admit(head_env, list(head.values()), usage)
    plans = [_stack_plan(s, titles.get(s, s), base.get(s), head.get(s)) for s in sorted(stacks)]
    return Plan(head_env.name, base_ref, tuple(p for p in plans if p is not None))


def _fleet_usage(
    ws: Workspace, env: Environment, changed: set[str], loaded: Sequence[TenantFile]
) -> admission.Usage | None:
    # Quotas change only with tenant files or the environment: only then count the whole fleet.
    # An environment change affects every tenant stack, so ``loaded`` is the fleet already.
    if ws.environment_path in changed:
        return admission.usage(f.tenant for f in loaded)
    if not any(_tenant_file_slug(p) for p in changed):
        return None
    files = load_tenants(tenant_paths(ws.root / TENANTS_DIR), env.base_domain)
    return admission.usage(f.tenant for f in files)


def affected_stacks(changed: set[str], ws: Workspace, git: GitRepo, commit: str) -> set[str]:
    """Stack names a set of changed paths affects."""
    if any(_is_code(p) or p == ws.environment_path for p in changed):
        head = {p.name.removesuffix(TENANT_SUFFIX) for p in tenant_paths(ws.root / TENANTS_DIR)}
        base = {Path(p).name.removesuffix(TENANT_SUFFIX) for p in git.list_dir(commit, TENANTS_DIR)
                if p.endswith(TENANT_SUFFIX)}  # fmt: skip
        return {PLATFORM_STACK} | {tenant_stack(s) for s in head | base}
    stacks = {tenant_stack(_tenant_file_slug(p)) for p in changed if _tenant_file_slug(p)}
    if any(p.startswith(PLATFORM_PREFIXES) for p in changed):
        stacks.add(PLATFORM_STACK)
    return stacks


def _tenant_file_slug(path: str) -> str:
    directory, _, name = path.rpartition("/")
    return (
        name.removesuffix(TENANT_SUFFIX)
        if directory == TENANTS_DIR and name.endswith(TENANT_SUFFIX)
        else ""
    )


def _is_code(path: str) -> bool:
    if path.startswith(f"{TENANTS_DIR}/"):
        return path.endswith(".py")  # tenant files and the generated schema are data
    return path.startswith(CODE_PREFIXES) or path in CODE_FILES


def _slugs(stacks: set[str], root: Path) -> list[str]:
    slugs = (tenant_slug(s) for s in sorted(stacks))
    return [s for s in slugs if s and (root / TENANTS_DIR / f"{s}{TENANT_SUFFIX}").exists()]


def _base_environment(git: GitRepo, commit: str, ws: Workspace) -> Environment | None:
    text = git.read(commit, ws.environment_path)
    if text is None:
        return None
    shown = f"{commit[:12]}:{ws.environment_path}"
    try:
        return Environment.model_validate(parse(text, shown).data)
    except (SpecError, pydantic.ValidationError) as exc:
        raise PlanError(f"{shown} is not a valid environment at the base: {exc}") from None


def _base_inputs(
    git: GitRepo, commit: str, stacks: set[str], env: Environment
) -> list[StackInputs]:
    inputs = [StackInputs.for_platform(env)] if PLATFORM_STACK in stacks else []
    for stack in sorted(stacks):
        slug = tenant_slug(stack)
        path = f"{TENANTS_DIR}/{slug}{TENANT_SUFFIX}"
        text = git.read(commit, path) if slug else None
        if text is not None:
            try:
                inputs.append(
                    StackInputs.for_tenant(parse_tenant(text, f"{commit[:12]}:{path}").tenant, env)
                )
            except SpecError:
                continue  # invalid at the base: it never deployed, so everything is new
    return inputs


def _render_base_with_its_code(
    git: GitRepo, commit: str, ws: Workspace, stacks: set[str]
) -> dict[str, RenderedStack]:
    with tempfile.TemporaryDirectory(prefix="dezky-base-") as tmp:
        git.export(commit, Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp, "PYTHONSAFEPATH": "1"}
        only = ",".join(sorted(stacks))
        argv = [sys.executable, "-m", "automation", "plan", "--format", "json",
                "--env", ws.environment, "--repo", tmp, "--only", only]  # fmt: skip
        done = subprocess.run(  # noqa: S603 (our own interpreter and module)
            argv, cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PlanError(
            f"could not render the base {commit[:12]} with its own code:\n" + "\n".join(detail)
        )
    rendered: dict[str, RenderedStack] = {}
    for entry in json.loads(done.stdout)["stacks"]:
        resources = tuple(DeclaredResource(**r) for r in entry["resources"])
        rendered[entry["stack"]] = RenderedStack(entry["stack"], resources)
    return rendered


def _stack_plan(
    stack: str, title: str, base: RenderedStack | None, head: RenderedStack | None
) -> StackPlan | None:
    if head is None:
        if base is None:
            return None
        note = (f"tenant file removed: nothing is destroyed and all data is kept; to offboard, "
                f"set `status: offboarding`, merge, then destroy {stack} explicitly")  # fmt: skip
        return StackPlan(stack, title, base.resources, StackChanges(), (note,), orphaned=True)
    changes = compare(base.resources if base else (), head.resources)
    return StackPlan(stack, title, head.resources, changes, datanotes.notes(changes))
