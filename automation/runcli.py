"""The run commands of ``dezky-infra``: preview, up, refresh, destroy, drift, recover, runs.

A thin shell: build settings once, select stacks, hand them to the runner, render, exit with
the code of the worst outcome (docs/exit-codes.md).
"""

import getpass
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from automation import console, signals
from automation.engine import Engine
from automation.errors import EXIT_CODES, classify
from automation.gitrepo import GitError
from automation.orchestrate import (
    Selection,
    SelectionError,
    check_blast_radius,
    run_phases,
    select,
    spec_for,
)
from automation.plan import PlanError, Workspace
from automation.records import Operation, RunRecord, RunState
from automation.recover import recover
from automation.runner import Runner, RunRequest
from automation.runstore import FileRunStore
from automation.settings import Settings
from tenants.problems import SpecError

EXIT_DRIFT = 3

StackOpt = Annotated[list[str] | None, typer.Option("--stack", help="Stack name (repeatable).")]
TenantOpt = Annotated[list[str] | None, typer.Option("--tenant", help="Tenant slug (repeatable).")]
AllOpt = Annotated[bool, typer.Option("--all", help="The platform stack and every tenant.")]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Stacks affected since this git ref.")]
ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, help="Stacks at once.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Progress as JSON lines.")]
SummaryOpt = Annotated[Path | None, typer.Option("--summary-file", help="Write markdown here.")]
WaitOpt = Annotated[float, typer.Option("--wait", help="Seconds to wait for a busy stack.")]
MaxOpt = Annotated[
    int, typer.Option("--max-tenants", help="Refuse more tenants without --yes-many.")
]
ManyOpt = Annotated[bool, typer.Option("--yes-many", help="Allow more than --max-tenants.")]
RepoOpt = Annotated[Path, typer.Option("--repo", file_okay=False, exists=True)]
EnvOpt = Annotated[str, typer.Option("--env", envvar="DEZKY_ENV")]


def _execute(
    operation: Operation,
    selection: Selection,
    *,
    repo: Path,
    env: str,
    parallel: int,
    as_json: bool,
    summary_file: Path | None,
    wait: float,
    max_tenants: int,
    yes_many: bool,
    allow_data_loss: bool = False,
) -> list[RunRecord]:
    settings = Settings.from_env(repo.resolve(), env)
    ws = Workspace(settings.repo, env)
    try:
        stacks = select(ws, selection)
        check_blast_radius(stacks, max_tenants, yes_many)
        specs = {stack: spec_for(ws, stack) for stack in stacks}  # all validated before any run
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CODES[classify(exc, True).reason]) from None
    except SelectionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (GitError, PlanError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: {exc.filename or ''}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    if not stacks:
        typer.echo("no stacks selected")
        return []
    cancel = threading.Event()
    signals.install(cancel)
    requested_by = getpass.getuser()
    requests = [RunRequest(s, operation, requested_by, allow_data_loss, wait) for s in stacks]
    store = FileRunStore(settings.runs_dir)
    engine = Engine(settings)
    if as_json:
        runner = Runner(engine, settings, store, console.JsonLines(), cancel)
        records = run_phases(requests, lambda r: runner.execute(r, specs[r.stack]), parallel)
    else:
        out = Console(stderr=True)
        with console.Bars(out) as bars:
            runner = Runner(engine, settings, store, bars, cancel)
            records = run_phases(requests, lambda r: runner.execute(r, specs[r.stack]), parallel)
        typer.echo(console.summary_text(records), nl=False)
    if summary_file is not None:
        summary_file.write_text(console.summary_markdown(records), encoding="utf-8")
    return records


def _exit_code(records: list[RunRecord]) -> int:
    failed = [r for r in records if r.state is not RunState.SUCCEEDED and r.reason is not None]
    if failed:
        return EXIT_CODES[failed[0].reason]  # type: ignore[index]
    return EXIT_DRIFT if any(r.drifted for r in records) else 0


def register(app: typer.Typer) -> None:
    """Add the run commands to the CLI."""

    def command(operation: Operation, helptext: str, data_loss: bool) -> None:
        def run(
            stack: StackOpt = None,
            tenant: TenantOpt = None,
            all_: AllOpt = False,
            base: BaseOpt = None,
            parallel: ParallelOpt = 2,
            as_json: JsonOpt = False,
            summary_file: SummaryOpt = None,
            wait: WaitOpt = 0.0,
            max_tenants: MaxOpt = 20,
            yes_many: ManyOpt = False,
            allow_data_loss: Annotated[
                bool,
                typer.Option(
                    "--allow-data-loss",
                    help="With status: offboarding, allow deleting customer data.",
                    hidden=not data_loss,
                ),
            ] = False,
            repo: RepoOpt = Path("."),
            env: EnvOpt = "prod",
        ) -> None:
            selection = Selection(tuple(stack or ()), tuple(tenant or ()), all_, base)
            records = _execute(
                operation,
                selection,
                repo=repo,
                env=env,
                parallel=parallel,
                as_json=as_json,
                summary_file=summary_file,
                wait=wait,
                max_tenants=max_tenants,
                yes_many=yes_many,
                allow_data_loss=allow_data_loss and data_loss,
            )
            raise typer.Exit(_exit_code(records))

        run.__doc__ = helptext
        app.command(operation.value)(run)

    command(Operation.PREVIEW, "Preview changes through the engine (takes no lock).", False)
    command(Operation.UP, "Apply the desired state; refuses to destroy customer data.", True)
    command(Operation.REFRESH, "Read the real state of every resource into the stack.", False)
    command(Operation.DESTROY, "Destroy tenant stacks that are offboarding.", True)
    command(Operation.DRIFT, "Preview with refresh; exit 3 when something drifted.", False)

    @app.command("recover")
    def recover_command(
        stack: Annotated[str, typer.Option("--stack", help="The stack to recover.")],
        force: Annotated[
            bool, typer.Option(help="A Pulumi lock from another host is known to be dead.")
        ] = False,
        repo: RepoOpt = Path("."),
        env: EnvOpt = "prod",
    ) -> None:
        """After a killed run: prove the holder dead, clear locks, refresh pending creates."""
        settings = Settings.from_env(repo.resolve(), env)
        try:
            report = recover(
                settings, Engine(settings), stack, console.JsonLines(sys.stderr), force
            )
        except Exception as exc:  # classified like any run failure
            failure = classify(exc, False)
            typer.echo(f"{stack}: not recovered: {failure.message}", err=True)
            raise typer.Exit(failure.exit_code) from None
        for action in report.actions or ["nothing to recover"]:
            typer.echo(f"{stack}: {action}")

    @app.command("runs")
    def runs_command(
        stack: Annotated[str | None, typer.Option("--stack")] = None,
        limit: Annotated[int, typer.Option(min=1)] = 20,
        repo: RepoOpt = Path("."),
        env: EnvOpt = "prod",
    ) -> None:
        """Recent runs recorded on this machine."""
        settings = Settings.from_env(repo.resolve(), env)
        records = FileRunStore(settings.runs_dir).history(stack, limit)
        typer.echo(console.summary_text(records) if records else "no runs recorded", nl=False)
