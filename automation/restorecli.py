"""``dezky-infra restore``: bring one backup source back into a directory, and prove it.

Runs on the platform host, where the restic role wrote one environment file per source and
repository (``/etc/restic/<source>-backup.env`` for the fsn1 box, ``<source>-copy.env`` for the
Helsinki copy). The command reads the repository and password file from there, so the person on
call never types a repository password; ``restic restore --verify`` re-reads every file and each
restored file is checked against the snapshot's listing (:func:`automation.backup.restore`).

Exit codes: 0 restored and verified; 1 the box is unreachable or the repository locked (try
again); 2 bad arguments (unknown source, target not empty); 11 the restore cannot succeed as asked
(wrong password, no repository, no such snapshot, verification failed).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from automation import backup

EXIT_RETRY = 1
EXIT_INVALID = 2
EXIT_RESTORE_FAILED = 11
DEFAULT_CONFIG_DIR = Path("/etc/restic")


class Box(StrEnum):
    PRIMARY = "primary"
    DR = "dr"


# Which environment file of the restic role names each box's repository.
_ENV_FILE = {Box.PRIMARY: "{source}-backup.env", Box.DR: "{source}-copy.env"}


class SourceConfigError(Exception):
    """The source's environment file is missing or does not name a repository."""


def repository_of(
    config_dir: Path, source: str, box: Box, ssh_config: Path | None = None
) -> backup.Repository:
    """The repository of ``source`` on ``box``, as the restic role configured it."""
    path = config_dir / _ENV_FILE[box].format(source=source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = sorted(p.name.removesuffix("-backup.env") for p in config_dir.glob("*-backup.env"))
        raise SourceConfigError(
            f"no backup source '{source}': {path} does not exist"
            + (f" (sources here: {', '.join(known)})" if known else "")
        ) from None
    values = _env_values(text)
    url, password_file = values.get("RESTIC_REPOSITORY"), values.get("RESTIC_PASSWORD_FILE")
    if not url or not password_file:
        raise SourceConfigError(f"{path}: RESTIC_REPOSITORY or RESTIC_PASSWORD_FILE is missing")
    cache = values.get("RESTIC_CACHE_DIR")
    return backup.Repository(
        url=url,
        password_file=Path(password_file),
        ssh_config=ssh_config,
        cache_dir=Path(cache) if cache else None,
    )


def _env_values(text: str) -> dict[str, str]:
    # systemd EnvironmentFile syntax as the role writes it: KEY=VALUE lines and comments.
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


def register(app: typer.Typer) -> None:
    @app.command()
    def restore(
        source: Annotated[str, typer.Argument(help="Backup source, e.g. mail or postgres.")],
        target: Annotated[Path, typer.Argument(help="Empty directory to restore into.")],
        box: Annotated[Box, typer.Option("--from", help="Which Storage Box.")] = Box.PRIMARY,
        snapshot: Annotated[str, typer.Option(help="Snapshot id, or latest.")] = "latest",
        config_dir: Annotated[
            Path, typer.Option(help="Where the restic role wrote its files.")
        ] = DEFAULT_CONFIG_DIR,
        ssh_config: Annotated[
            Path | None, typer.Option(help="ssh_config with the repository aliases.")
        ] = None,
    ) -> None:
        """Restore one backup source into an empty directory and verify every file."""
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise _fail(EXIT_INVALID, f"{target} is not an empty directory: nothing restored")
        try:
            repo = repository_of(config_dir, source, box, ssh_config)
            result = backup.restore(repo, target, snapshot=snapshot, tags=[source])
        except (SourceConfigError, ValueError) as exc:
            raise _fail(EXIT_INVALID, str(exc)) from None
        except backup.RetryableError as exc:
            raise _fail(EXIT_RETRY, f"{exc}\nnothing was changed; try again") from None
        except backup.ResticError as exc:
            raise _fail(EXIT_RESTORE_FAILED, str(exc)) from None
        typer.echo(
            f"restored {source} snapshot {result.snapshot_id[:8]} from the {box.value} box into "
            f"{result.target_dir}: {result.files} files, {result.bytes} bytes, verified"
        )


def _fail(code: int, message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)
