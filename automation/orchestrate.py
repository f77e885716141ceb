"""Which stacks a run touches, in which order, how many at once.

``up`` (and preview, refresh, drift) runs the platform stack before tenant stacks, ``destroy``
after them; inside a phase stacks run with bounded parallelism, each in its own engine process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from automation.gitrepo import GitRepo
from automation.plan import TENANTS_DIR, Workspace, affected_stacks
from automation.records import Operation, Reason, RunRecord, RunState
from automation.runner import RunRequest, StackSpec, now
from stacks.naming import PLATFORM_STACK, tenant_slug, tenant_stack
from tenants.loader import TENANT_SUFFIX, load_tenant, tenant_paths


class SelectionError(Exception):
    """The stacks asked for cannot be run as asked (unknown, too many, none)."""


@dataclass(frozen=True)
class Selection:
    stacks: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    all: bool = False
    base: str | None = None


def select(ws: Workspace, selection: Selection) -> list[str]:
    """Stack names for a selection; exactly one way of selecting must be used."""
    ways = sum(
        bool(x) for x in (selection.stacks, selection.tenants, selection.all, selection.base)
    )
    if ways != 1:
        raise SelectionError(
            "choose the stacks with exactly one of --stack, --tenant, --all, --base"
        )
    if selection.all:
        slugs = [p.name.removesuffix(TENANT_SUFFIX) for p in tenant_paths(ws.root / TENANTS_DIR)]
        return [PLATFORM_STACK, *(tenant_stack(s) for s in slugs)]
    if selection.base:
        git = GitRepo(ws.root)
        commit = git.resolve(selection.base)
        return sorted(affected_stacks(git.changed_paths(commit), ws, git, commit))
    names = [*selection.stacks, *(tenant_stack(t) for t in selection.tenants)]
    for name in names:
        if name != PLATFORM_STACK and tenant_slug(name) is None:
            raise SelectionError(
                f"unknown stack '{name}': stacks are 'platform' and 'tenant-<slug>'"
            )
    return list(dict.fromkeys(names))


def spec_for(ws: Workspace, stack: str) -> StackSpec:
    """The tenant behind a stack (validated; SpecError if invalid) and a hash of its inputs."""
    digest = hashlib.sha256((ws.root / ws.environment_path).read_bytes())
    slug = tenant_slug(stack)
    if slug is None:
        return StackSpec(None, digest.hexdigest())
    path = ws.root / TENANTS_DIR / f"{slug}{TENANT_SUFFIX}"
    if not path.exists():
        return StackSpec(None, digest.hexdigest())
    digest.update(path.read_bytes())
    return StackSpec(load_tenant(path).tenant, digest.hexdigest())


def check_blast_radius(stacks: Sequence[str], max_tenants: int, yes_many: bool) -> None:
    tenants = sum(1 for s in stacks if s != PLATFORM_STACK)
    if tenants > max_tenants and not yes_many:
        raise SelectionError(
            f"this run would touch {tenants} tenant stacks (more than --max-tenants "
            f"{max_tenants}); add --yes-many if that is intended"
        )


def phases(stacks: Sequence[str], operation: Operation) -> list[list[str]]:
    platform = [s for s in stacks if s == PLATFORM_STACK]
    tenants = [s for s in stacks if s != PLATFORM_STACK]
    ordered = [tenants, platform] if operation is Operation.DESTROY else [platform, tenants]
    return [phase for phase in ordered if phase]


def run_phases(
    requests: Sequence[RunRequest],
    execute: Callable[[RunRequest], RunRecord],
    parallel: int,
) -> list[RunRecord]:
    """Run phase by phase; when a phase fails, later phases are skipped, not attempted."""
    by_stack = {r.stack: r for r in requests}
    operation = requests[0].operation if requests else Operation.PREVIEW
    records: list[RunRecord] = []
    blocked = ""
    for phase in phases(list(by_stack), operation):
        if blocked:
            records += [_skipped(by_stack[s], blocked) for s in phase]
            continue
        with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="run") as pool:
            done = list(pool.map(execute, [by_stack[s] for s in phase]))
        records += done
        failed = [r.stack for r in done if r.state is not RunState.SUCCEEDED]
        if failed and operation in (Operation.UP, Operation.DESTROY):
            blocked = f"skipped: {', '.join(failed)} did not succeed"
    return records


def _skipped(request: RunRequest, why: str) -> RunRecord:
    return RunRecord(
        id=request.id,
        stack=request.stack,
        operation=request.operation,
        state=RunState.FAILED,
        requested_by=request.requested_by,
        created_at=now(),
        reason=Reason.UPDATE_FAILED,
        message=why,
    )
