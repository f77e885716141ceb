"""Components under Pulumi's mock runtime: the helpers of the provider tests, and a recorder
that keeps every registration by name (several children share one resource type)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pulumi
import pytest

from tests.providers import conftest as providers


class ByName(providers.Recorder):
    """Keeps each registration's type and inputs by resource name."""

    def __init__(self, outputs: Mapping[str, dict[str, Any]]) -> None:
        super().__init__(outputs)
        self.by_name: dict[str, tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.by_name[args.name] = (args.typ, dict(args.inputs))
        return super().new_resource(args)


Render = Callable[..., tuple[ByName, Any, dict[str, Any]]]


@pytest.fixture
def render(monkeypatch: pytest.MonkeyPatch) -> Render:
    """``render(build, watched, outputs)``: the provider tests' ``render_component`` with a
    recorder that keeps every registration by name."""
    monkeypatch.setattr(providers, "Recorder", ByName)

    def run(
        build: Callable[[], pulumi.Resource],
        watched: Iterable[str] = (),
        outputs: Mapping[str, dict[str, Any]] | None = None,
    ) -> tuple[ByName, Any, dict[str, Any]]:
        recorder, monitor, seen = providers.render_component(build, watched, outputs or {})
        assert isinstance(recorder, ByName)
        return recorder, monitor, seen

    return run


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi marker


def unsecret(value: Any) -> tuple[bool, Any]:
    """(whether the mock runtime saw ``value`` as a secret, its plain value)."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return True, value["value"]
    return False, value
