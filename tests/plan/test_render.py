"""The offline renderer: secrets masked, engine internals dropped, parallel equals serial."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pulumi
import pulumi.dynamic
import pulumi_kubernetes as k8s
import pytest

from automation.render import render, render_all
from stacks.program import StackInputs
from tenants.environment import load_environment
from tenants.loader import load_tenant
from tests.conftest import REPO

ENV = load_environment(REPO / "environments" / "prod.yaml")
ACME = load_tenant(REPO / "tenants" / "acme.yaml").tenant


def _program_with_a_secret(inputs: StackInputs) -> None:
    k8s.core.v1.Secret(
        "credentials",
        metadata={"name": "smtp"},
        string_data={"password": pulumi.Output.secret("hunter2-not-for-logs")},
    )


def test_secret_inputs_are_masked_in_the_rendering() -> None:
    rendered = render(StackInputs.for_platform(ENV), _program_with_a_secret)
    text = json.dumps([asdict(r) for r in rendered.resources])
    assert "hunter2-not-for-logs" not in text
    assert "[secret]" in text


def test_duplicate_logical_names_are_refused_like_the_engine_would() -> None:
    def twice(inputs: StackInputs) -> None:
        k8s.core.v1.Namespace("same", metadata={"name": "a"})
        k8s.core.v1.Namespace("same", metadata={"name": "b"})

    with pytest.raises(Exception, match="two resources named 'same'"):
        render(StackInputs.for_platform(ENV), twice)


def test_parallel_rendering_equals_serial_rendering() -> None:
    specs = [ACME.model_copy(update={"slug": f"t{i:03d}"}) for i in range(70)]
    tenants = [StackInputs.for_tenant(spec, ENV) for spec in specs]
    serial = render_all(tenants, workers=1)
    parallel = render_all(tenants, workers=2)
    assert [s.stack for s in parallel] == [f"tenant-t{i:03d}" for i in range(70)]
    assert parallel == serial


def test_plan_json_shape(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from automation.cli import app

    summary = tmp_path / "summary.md"
    result = CliRunner().invoke(
        app, ["plan", "--repo", str(REPO), "--format", "json", "--summary-file", str(summary)]
    )
    assert result.exit_code == 0, result.output
    stacks = {s["stack"]: s for s in json.loads(result.output)["stacks"]}
    assert set(stacks) == {"platform", "tenant-acme", "tenant-dezky"}
    quota = next(r for r in stacks["tenant-acme"]["resources"] if r["name"] == "k8s-quota")
    assert quota["type"] == "kubernetes:core/v1:ResourceQuota"
    assert quota["parent"] == "k8s"
    assert quota["inputs"]["spec"]["hard"]["requests.cpu"] == "2"
    assert summary.read_text().startswith("### dezky-infra plan (prod)")


class _NoopProvider(pulumi.dynamic.ResourceProvider):
    def __init__(self) -> None:
        self.options = {"timeout": 10}  # a dict in the pickled state, as real providers have

    def create(self, props: dict[str, object]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult("x", props)


class _Noop(pulumi.dynamic.Resource, module="test", name="Noop"):
    def __init__(self, name: str) -> None:
        super().__init__(_NoopProvider(), name, {"n": 1})


def _many_dynamic_resources(inputs: StackInputs) -> None:
    for i in range(20):
        _Noop(f"d{i}")


def test_one_process_renders_thousands_of_dynamic_resources() -> None:
    # Regression: pulumi.dynamic nests a pickle wrapper per dynamic resource and never
    # unwraps it, so a long-lived renderer hit RecursionError after ~1,000 of them.
    for _ in range(60):
        rendered = render(StackInputs.for_platform(ENV), _many_dynamic_resources)
    assert len(rendered.resources) == 20
