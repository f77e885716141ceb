"""Admission checks the offline plan applies before a change may merge.

Every Hetzner resource must sit in an EU location, and the tenants' quotas must fit the
capacity declared for the platform with its headroom. A failure names the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from automation.render import RenderedStack
from tenants.environment import Environment
from tenants.model import Tenant

EU_LOCATIONS = frozenset({"fsn1", "nbg1", "hel1"})


class AdmissionError(Exception):
    """The change breaks a platform rule; merging it must not be possible."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"admission: {p}" for p in self.problems))


@dataclass(frozen=True)
class Usage:
    files_gb: int
    mail_gb: int


def usage(tenants: Iterable[Tenant]) -> Usage:
    listed = list(tenants)
    return Usage(sum(t.files_gb for t in listed), sum(t.mail_gb for t in listed))


def location_problems(stacks: Iterable[RenderedStack]) -> list[str]:
    problems = []
    for stack in stacks:
        for resource in stack.resources:
            location = resource.inputs.get("location")
            hetzner = resource.type.startswith("hcloud:") and location is not None
            if hetzner and location not in EU_LOCATIONS:
                allowed = ", ".join(sorted(EU_LOCATIONS))
                problems.append(
                    f"{stack.stack}: {resource.type} {resource.name} is in '{location}'; "
                    f"Hetzner resources must be in an EU location ({allowed})"
                )
    return problems


def capacity_problems(environment: Environment, used: Usage) -> list[str]:
    capacity = environment.capacity
    if capacity is None:
        return []
    usable = (100 - capacity.headroom_percent) / 100
    problems = []
    for kind, total, have in (("files", used.files_gb, capacity.files_gb),
                              ("mail", used.mail_gb, capacity.mail_gb)):  # fmt: skip
        limit = int(have * usable)
        if total > limit:
            problems.append(
                f"tenants' {kind} quotas add up to {total:,} GB; {environment.name} holds "
                f"{have:,} GB and keeps {capacity.headroom_percent}% headroom, so at most "
                f"{limit:,} GB may be promised ({total - limit:,} GB too many)"
            )
    return problems


def admit(environment: Environment, stacks: Sequence[RenderedStack], used: Usage | None) -> None:
    problems = location_problems(stacks)
    if used is not None:
        problems += capacity_problems(environment, used)
    if problems:
        raise AdmissionError(problems)
