"""``dezky-infra serve`` and ``dezky-infra worker``: the run API and the run executor.

Settings come from the environment, read here once: ``MONGODB_URI`` (or ``--embedded`` for a
local MongoDB wire server under .state/mongo), ``DEZKY_OIDC_ISSUERS`` (comma-separated),
``DEZKY_OIDC_AUDIENCE`` (default ``dezky-operator``).
"""

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from automation import mongo

RepoOpt = Annotated[Path, typer.Option("--repo", file_okay=False, exists=True)]
EnvOpt = Annotated[str, typer.Option("--env", envvar="DEZKY_ENV")]


@contextlib.contextmanager
def _database(repo: Path, embedded: bool) -> Iterator[str]:
    uri = os.environ.get("MONGODB_URI", "")
    if uri and not embedded:
        yield uri
        return
    if not embedded:
        raise typer.BadParameter("set MONGODB_URI, or use --embedded for a local database")
    from secantus import SecantusDBServer

    path = repo / ".state" / "mongo"
    path.mkdir(parents=True, exist_ok=True)
    with SecantusDBServer(storage_path=str(path)) as server:
        typer.echo(f"embedded MongoDB wire server at {server.uri}", err=True)
        yield server.uri


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
        embedded: Annotated[bool, typer.Option(help="Start a local MongoDB wire server.")] = False,
        with_worker: Annotated[
            bool, typer.Option(help="Also run a worker in this process.")
        ] = False,
        repo: RepoOpt = Path("."),
        env: EnvOpt = "prod",
    ) -> None:
        """Serve the run API (OpenAPI at /openapi.json, docs at /docs)."""
        import uvicorn

        from automation.api.app import ApiSettings, create_app
        from automation.api.auth import AuthSettings, TokenVerifier

        issuers = os.environ.get("DEZKY_OIDC_ISSUERS", "")
        if not issuers:
            raise typer.BadParameter("set DEZKY_OIDC_ISSUERS to the Authentik issuer URL(s)")
        audience = os.environ.get("DEZKY_OIDC_AUDIENCE", "dezky-operator")
        verifier = TokenVerifier(AuthSettings.from_csv(issuers, audience=audience))
        logging.basicConfig(level=logging.INFO)
        with _database(repo.resolve(), embedded) as uri:
            store = mongo.RunStore(mongo.connect(uri))
            store.ensure_indexes()
            stop = threading.Event()
            if with_worker:
                threading.Thread(
                    target=_work, args=(uri, repo.resolve(), env, stop), daemon=True
                ).start()
            try:
                uvicorn.run(create_app(store, verifier, ApiSettings()), host=host, port=port)
            finally:
                stop.set()

    @app.command("worker")
    def worker(
        repo: RepoOpt = Path("."),
        env: EnvOpt = "prod",
    ) -> None:
        """Claim queued runs from MongoDB and execute them, one at a time."""
        uri = os.environ.get("MONGODB_URI", "")
        if not uri:
            raise typer.BadParameter("set MONGODB_URI")
        stop = threading.Event()
        import signal

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        _work(uri, repo.resolve(), env, stop)


def _work(uri: str, repo: Path, env: str, stop: threading.Event) -> None:
    from automation.engine import Engine
    from automation.settings import Settings
    from automation.worker import Worker

    settings = Settings.from_env(repo, env)
    store = mongo.RunStore(mongo.connect(uri), timedelta(seconds=settings.lease_seconds))
    store.ensure_indexes()
    # One engine for the worker's life: the CLI check and plugin installs happen once.
    engine = Engine(settings)
    Worker(store, settings, lambda: engine, stop).run_forever()
