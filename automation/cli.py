"""``dezky-infra``: a thin shell over the core. Parse, call one function, render, exit.

Exit codes: 0 success, 1 operational error (git, base rendering), 2 invalid input (tenant
files, environment, arguments), 70 internal error. See docs/exit-codes.md.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tenants import schema
from tenants.environment import load_environment
from tenants.loader import load_tenants, tenant_paths
from tenants.problems import Problem, SpecError

EXIT_OPERATIONAL = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 70

app = typer.Typer(
    name="dezky-infra",
    help="Reconcile the Dezky platform and its tenants from the files in this repository.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RepoOption = Annotated[
    Path, typer.Option("--repo", help="Repository root.", file_okay=False, exists=True)
]
EnvOption = Annotated[
    str, typer.Option("--env", envvar="DEZKY_ENV", help="Environment: environments/<env>.yaml.")
]


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Tenant files or folders.")] = None,
    repo: RepoOption = Path("."),
    env: EnvOption = "prod",
) -> None:
    """Check tenant files one by one and as a set; report every problem as path:line:col."""
    files: list[Path] = []
    missing: list[Problem] = []
    for path in paths or [repo / "tenants"]:
        if path.is_dir():
            files += tenant_paths(path)
        elif path.exists():
            files.append(path)
        else:
            missing.append(Problem(str(path), 1, 1, "file", "no such file"))
    try:
        environment = load_environment(repo / "environments" / f"{env}.yaml")
        loaded = load_tenants(files, environment.base_domain)
    except SpecError as exc:
        raise _fail(EXIT_INVALID, str(SpecError([*missing, *exc.problems]))) from None
    if missing:
        raise _fail(EXIT_INVALID, str(SpecError(missing)))
    typer.echo(f"{len(loaded)} tenant files valid")


@app.command()
def plan(
    base: Annotated[
        str | None, typer.Option("--base", help="Git ref to compare with; plan only what changed.")
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TEXT,
    repo: RepoOption = Path("."),
    env: EnvOption = "prod",
    only: Annotated[str, typer.Option(help="Comma-separated stack names to render.")] = "",
    workers: Annotated[int, typer.Option(min=1, help="Processes for rendering.")] = 2,
    summary_file: Annotated[
        Path | None, typer.Option(help="Also write the markdown summary here.")
    ] = None,
) -> None:
    """Offline plan: run the stack programs under mocks; no engine, no credentials."""
    # Imported here: they load Pulumi (~0.5 s), which `validate` has no use for.
    from automation import report
    from automation.admission import AdmissionError
    from automation.gitrepo import GitError
    from automation.plan import PlanError, Workspace, plan_all, plan_change

    ws = Workspace(repo.resolve(), env)
    try:
        if base is None:
            result = plan_all(ws, workers, [s for s in only.split(",") if s])
        else:
            result = plan_change(ws, base, workers)
    except (SpecError, AdmissionError) as exc:
        raise _fail(EXIT_INVALID, str(exc)) from None
    except (GitError, PlanError) as exc:
        raise _fail(EXIT_OPERATIONAL, f"error: {exc}") from None
    render = {
        Format.TEXT: report.to_text,
        Format.JSON: report.to_json,
        Format.MARKDOWN: report.to_markdown,
    }
    typer.echo(render[output](result), nl=False)
    if summary_file is not None:
        summary_file.write_text(report.to_markdown(result), encoding="utf-8")


@app.command("schema")
def schema_command(
    write: Annotated[
        bool, typer.Option(help="Write tenants/tenant.schema.json and docs/tenant-spec.md.")
    ] = False,
) -> None:
    """Print (or write) the JSON Schema of tenant files."""
    text = schema.generate()
    if write:
        schema.SCHEMA_PATH.write_text(text, encoding="utf-8")
        schema.REFERENCE_PATH.write_text(schema.reference(), encoding="utf-8")
    else:
        typer.echo(text, nl=False)


def _register_runs() -> None:
    from automation import restorecli, runcli, servecli

    runcli.register(app)
    servecli.register(app)
    restorecli.register(app)


def main() -> None:
    try:
        if not {"validate", "schema"} & set(sys.argv[1:2]):
            _register_runs()  # loads the engine adapter; `validate` starts faster without it
        app()
    except Exception as exc:  # the last line of defence: a message and a code, never a traceback
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        typer.echo("this is a bug in dezky-infra; report it with the command you ran", err=True)
        sys.exit(EXIT_INTERNAL)
