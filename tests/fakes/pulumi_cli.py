"""A fake ``pulumi`` executable for tests of code built on ``pulumi.automation``.

The real CLI cannot be installed here, so tests install this script as ``<root>/bin/pulumi``
(see ``install_fake_pulumi``) and let the real SDK drive it: ``PulumiCommand(root=...)`` runs
``pulumi version``, ``LocalWorkspace``/``Stack`` run ``stack select``/``stack init``/``preview``/
``up``/``refresh``/``destroy``/``cancel``/``stack output``/``stack history`` as subprocesses, the
SDK classifies failures by their stderr text and receives engine events over its gRPC
``Events`` server (CLI > 3.205) or by tailing an event-log file (older CLIs).

What the fake mimics (see the module tests for each one):

* A DIY (``file://``) backend: ``.pulumi/stacks/<project>/<stack>.json`` checkpoints with
  ``resources`` and ``pending_operations``, ``.pulumi/locks/organization/<project>/<stack>/
  <uuid>.json`` lock files (``pid``, ``username``, ``hostname``, ``timestamp``) taken by
  ``up``/``refresh``/``destroy`` with DIY's check-write-check, ``.pulumi/history`` entries.
  ``s3://``/``gs://``/``azblob://`` URLs are mapped to directories under ``<root>/buckets``.
* The CLI's error texts the SDK matches on (``no stack named 'x' found``, ``stack 'x' already
  exists``, ``the stack is currently locked by 1 lock(s)...``), the engine's diagnostics
  (``update failed``, ``update canceled``, the pending-operations warning) and exit code 255.
* Graceful cancellation: the first SIGINT/SIGTERM lets the step in flight finish, then the run
  stops, reports ``update canceled`` and releases the lock; a second signal terminates at once
  (lock released, pending operation left). SIGKILL leaves the lock and the pending operation.

Commands: ``version``, ``stack select|init|ls|rm|output|history|export|import``, ``config``
(``set``, ``set-all``, ``get``, ``rm``, ``rm-all``, bare ``--json`` listing; stored in
``Pulumi.<stack>.yaml``), ``plugin install|ls|rm`` (recorded in ``<root>/plugins.json``),
``preview``, ``up``, ``refresh``, ``destroy``, ``cancel``, ``whoami``, ``about``; anything else
exits 0 without output.

The scenario (``<root>/scenario.json``, re-read on every call) says what the "program" does;
``install_fake_pulumi`` documents its format. Every call is appended to ``<root>/calls.jsonl``.
As a script: ``PULUMI_FAKE_ROOT=<root> python tests/fakes/pulumi_cli.py <args>``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fnmatch
import getpass
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse, urlunparse

import yaml

DEFAULT_VERSION = "3.257.0"
ORGANIZATION = "organization"  # DIY backends scope project stacks under this fixed org name
EXIT_FAILURE = 255
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi's secret signature
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
SECRET_MASK = "[secret]"  # noqa: S105 - the CLI's mask
HISTORY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000Z"

LOCKED_TEXT = (
    "the stack is currently locked by {n} lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`."
)
NO_PHRASE_TEXT = (
    'constructing secrets manager of type "passphrase": passphrase must be set with '
    "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
)
BAD_PHRASE_TEXT = (
    "incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase or set "
    "PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the passphrase"
)
PENDING_WARNING_TEXT = (
    "These resources are in an unknown state because the Pulumi CLI was interrupted while "
    "waiting for changes to these resources to complete. You should confirm whether or not the "
    "operations listed completed successfully by checking the state of the appropriate provider. "
    "For example, if you are using AWS, you can confirm using the AWS Console.\n"
    "\n"
    "Once you have confirmed the status of the interrupted operations, you can repair your stack "
    "using `pulumi refresh` which will refresh the state from the provider you are using and "
    "clear the pending operations if there are any.\n"
    "\n"
    "Note that `pulumi refresh` will need to be run interactively to clear pending CREATE "
    "operations."
)

# Flags that take a value (the rest are booleans); `--flag=value` works for any flag.
VALUE_FLAGS = frozenset(
    {
        "--stack", "-s", "--secrets-provider", "--message", "-m", "--target", "-t",
        "--exclude", "--replace", "--policy-pack", "--policy-pack-config", "--parallel", "-p",
        "--color", "--verbose", "-v", "--tracing", "--tracing-header", "--config-file",
        "--event-log", "--exec-kind", "--plan", "--save-plan", "--import-file", "--page-size",
        "--page", "--file", "--out", "--from", "--server", "--client", "--cwd", "-C",
        "--otel-traces", "--profiling", "--memprofilerate", "--import-pending-creates",
    }
)  # fmt: skip
SET_ALL_VALUE_FLAGS = VALUE_FLAGS | {"--plaintext", "--secret", "--json"}

PENDING_TYPE = {
    "create": "creating",
    "update": "updating",
    "delete": "deleting",
    "replace": "creating",
}
STEP_OPS = frozenset({"create", "update", "delete", "replace", "same"})
DRIFT_OPS = frozenset({"update", "delete"})
SYMBOL = {"create": "+", "update": "~", "delete": "-", "replace": "+-", "same": " ", "refresh": " "}
DONE_WORD = {
    "create": "created", "update": "updated", "delete": "deleted", "replace": "replaced",
    "same": "unchanged", "refresh": "refreshed",
}  # fmt: skip
PLAN_WORD = {
    "create": "to create", "update": "to update", "delete": "to delete", "replace": "to replace",
    "same": "unchanged", "refresh": "to refresh",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Helpers for tests (import these; they do not run the CLI)
# --------------------------------------------------------------------------------------------


def install_fake_pulumi(root: Path, scenario: Mapping[str, Any]) -> Path:
    """Install the fake as ``root/bin/pulumi`` and write ``root/scenario.json``; return ``root``.

    ``auto.PulumiCommand(root=str(root))`` then finds and runs it. The launcher's shebang is the
    current interpreter (the venv's: it has grpc and pulumi's protos).

    Scenario format (every key optional)::

        {
          "version": "3.257.0",      # what `pulumi version` prints (with a leading "v")
          "missing": false,          # true: every call fails with exit 127, like a missing engine
          "stacks": {                # per stack name; fnmatch patterns ("tenant-*") also match
            "dev": {
              "steps": [             # what preview/up report and apply, in order
                {"op": "create|update|delete|replace|same", "type": "hcloud:index/server:Server",
                 "name": "web",
                 # optional: "id", "inputs", "outputs", "diffs" (update/replace, default
                 # ["value"]), "provider", "urn", "seconds" (this step's duration)
                }
              ],
              "step_seconds": 0.0,   # duration of each step (the window for signals)
              "fail": {"at_step": 1, "message": "boom", "ops": ["up"]},  # ops default ["up"]
              "drift": [{"op": "update|delete", "type": "...", "name": "..."}],  # seen by refresh,
                                     # refresh --preview-only, preview/up --refresh
              "destroy_steps": [...],  # default: delete every resource in the state
              "outputs": {"ip": "203.0.113.10"},   # stack outputs written by a successful up
              "secret_outputs": ["password"]        # outputs stored and shown as secrets
            }
          }
        }
    """
    root = Path(root)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    write_scenario(root, scenario)
    launcher = root / "bin" / "pulumi"
    launcher.write_text(
        f"#!{sys.executable}\n"
        '"""Launcher for the fake pulumi CLI (tests/fakes/pulumi_cli.py)."""\n'
        "import importlib.util\n"
        "import sys\n"
        f"spec = importlib.util.spec_from_file_location('fake_pulumi_cli', {str(Path(__file__).resolve())!r})\n"  # noqa: E501
        "module = sys.modules['fake_pulumi_cli'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"sys.exit(module.main(sys.argv[1:], root={str(root.resolve())!r}))\n",
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return root


def write_scenario(root: Path, scenario: Mapping[str, Any]) -> None:
    """Replace the scenario; the next CLI call sees it (tests change it between operations)."""
    Path(root, "scenario.json").write_text(json.dumps(scenario, indent=2), encoding="utf-8")


def read_calls(root: Path) -> list[dict[str, Any]]:
    """Every CLI call so far: ``{"argv", "ts", "pid", "cwd", "env"}`` (passphrases masked)."""
    path = Path(root, "calls.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def stack_state_path(backend_dir: Path, project: str, stack: str) -> Path:
    """The DIY checkpoint file of a stack under a ``file://`` backend directory."""
    return Path(backend_dir, ".pulumi", "stacks", project, f"{_short(stack)}.json")


def stack_lock_dir(backend_dir: Path, project: str, stack: str) -> Path:
    """The DIY lock directory of a stack (one ``<uuid>.json`` per lock holder)."""
    return Path(backend_dir, ".pulumi", "locks", ORGANIZATION, project, _short(stack))


def read_stack_state(backend_dir: Path, project: str, stack: str) -> dict[str, Any]:
    """The stack's latest deployment (``resources``, ``pending_operations``...), ``{}`` if none."""
    path = stack_state_path(backend_dir, project, stack)
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["checkpoint"].get("latest") or {}


def plant_lock(
    backend_dir: Path,
    project: str,
    stack: str,
    *,
    pid: int = 4242,
    username: str = "ci",
    hostname: str = "runner-1",
) -> Path:
    """Write a lock file as another ``pulumi up`` holding the stack would have left it."""
    lock_dir = stack_lock_dir(backend_dir, project, stack)
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{uuid.uuid4()}.json"
    path.write_text(json.dumps(_lock_content(pid, username, hostname)), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------------------------


class CliError(Exception):
    """A CLI failure: ``error: <message>`` on stderr, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _short(stack: str) -> str:
    return stack.rsplit("/", 1)[-1]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _now_rfc3339(nanos: bool = True) -> str:
    now = dt.datetime.now(dt.UTC).astimezone()
    return now.isoformat(timespec="microseconds" if nanos else "seconds")


def _lock_content(pid: int, username: str, hostname: str) -> dict[str, Any]:
    return {"pid": pid, "username": username, "hostname": hostname, "timestamp": _now_rfc3339()}


def _write_json(path: Path, data: Any, *, backup: bool = False) -> None:
    """Write atomically; with ``backup`` keep the previous version as ``<name>.bak`` (like DIY)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if backup and path.exists():
        shutil.copyfile(path, path.with_name(path.name + ".bak"))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
    tmp.replace(path)


def _encode_secret(value: Any) -> dict[str, str]:
    blob = base64.b64encode(json.dumps(value).encode()).decode()
    return {SECRET_SIG_KEY: SECRET_SIG_VALUE, "ciphertext": f"v1:fake:{blob}"}


def _decode_secret(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
        ciphertext = str(value.get("ciphertext", ""))
        if ciphertext.startswith("v1:fake:"):
            return json.loads(base64.b64decode(ciphertext.removeprefix("v1:fake:"))), True
        return value.get("plaintext", SECRET_MASK), True
    return value, False


@dataclass
class Args:
    """Parsed argv: positionals plus every occurrence of each flag."""

    positionals: list[str]
    flags: dict[str, list[str]] = field(default_factory=dict)

    def has(self, *names: str) -> bool:
        return any(name in self.flags for name in names)

    def value(self, *names: str, default: str | None = None) -> str | None:
        for name in names:
            if self.flags.get(name):
                return self.flags[name][-1]
        return default

    def values(self, name: str) -> list[str]:
        return list(self.flags.get(name, []))

    def flag_true(self, name: str) -> bool:
        return name in self.flags and self.flags[name][-1] not in ("false", "0")


def parse_args(argv: list[str], value_flags: frozenset[str] = VALUE_FLAGS) -> Args:
    args = Args(positionals=[])
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            args.positionals.extend(argv[i + 1 :])
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, inline = arg.partition("=")
            if eq:
                args.flags.setdefault(name, []).append(inline)
            elif name in value_flags and i + 1 < len(argv):
                args.flags.setdefault(name, []).append(argv[i + 1])
                i += 1
            else:
                args.flags.setdefault(name, []).append("true")
        else:
            args.positionals.append(arg)
        i += 1
    return args


# --------------------------------------------------------------------------------------------
# Workspace, backend, stacks
# --------------------------------------------------------------------------------------------


@dataclass
class Project:
    name: str
    directory: Path
    settings: dict[str, Any]


def find_project(cwd: Path) -> Project:
    for directory in (cwd, *cwd.parents):
        for ext in ("yaml", "yml", "json"):
            path = directory / f"Pulumi.{ext}"
            if path.exists():
                text = path.read_text(encoding="utf-8")
                settings = json.loads(text) if ext == "json" else yaml.safe_load(text) or {}
                return Project(str(settings.get("name", "")), directory, settings)
    raise CliError(
        f"no Pulumi.yaml project file found (searching upwards from {cwd}). If you have not "
        "created a project yet, use `pulumi new` to do so: no project file found"
    )


class Backend:
    """A DIY backend in a local directory (``file://``; object-store URLs mapped under root)."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "file":
            base = Path(os.path.expanduser(parsed.netloc + parsed.path))
        elif parsed.scheme in ("s3", "gs", "azblob"):
            base = root / "buckets" / parsed.scheme / (parsed.netloc + parsed.path).strip("/")
        else:
            raise CliError(
                "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"
            )
        self.base = base
        self.dir = base / ".pulumi"

    def ensure_meta(self) -> None:
        meta = self.dir / "meta.yaml"
        if not meta.exists():
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text("version: 1\n", encoding="utf-8")

    def url_for(self, path: Path) -> str:
        rel = path.relative_to(self.base).as_posix()
        parsed = urlparse(self.url)
        return urlunparse(parsed._replace(path=parsed.path.rstrip("/") + "/" + rel))


class StackStore:
    """One stack's checkpoint, locks and history in the backend."""

    def __init__(self, backend: Backend, project: str, stack: str) -> None:
        self.backend = backend
        self.project = project
        self.name = _short(stack)
        self.path = stack_state_path(backend.base, project, self.name)
        self.lock_dir = stack_lock_dir(backend.base, project, self.name)
        self.history_dir = backend.dir / "history" / project / self.name
        self.fq_name = f"{ORGANIZATION}/{project}/{self.name}"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, Any]:
        data = json.loads(self.path.read_text(encoding="utf-8"))
        latest = data["checkpoint"].get("latest") or {}
        latest.setdefault("resources", [])
        latest.setdefault("pending_operations", [])
        return latest

    def save(self, latest: dict[str, Any]) -> None:
        latest["manifest"] = {"time": _now_rfc3339(), "magic": "", "version": f"v{DEFAULT_VERSION}"}
        data = {"version": 3, "checkpoint": {"stack": self.fq_name, "latest": latest}}
        _write_json(self.path, data, backup=True)

    def urn(self, type_: str, name: str) -> str:
        return f"urn:pulumi:{self.name}::{self.project}::{type_}::{name}"

    def stack_urn(self) -> str:
        return self.urn("pulumi:pulumi:Stack", f"{self.project}-{self.name}")

    # -- locks (pkg/backend/diy/lock.go) --

    def lock_files(self) -> list[Path]:
        if not self.lock_dir.is_dir():
            return []
        return sorted(p for p in self.lock_dir.iterdir() if p.is_file())

    def _check_for_lock(self, own: Path | None) -> None:
        others = [p for p in self.lock_files() if p != own]
        if not others:
            return
        lines = [LOCKED_TEXT.format(n=len(others))]
        for path in others:
            try:
                lock = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CliError(f"reading lock {path}: {exc}") from exc
            lines.append(
                f"  {self.backend.url_for(path)}: created by {lock.get('username')}@"
                f"{lock.get('hostname')} (pid {lock.get('pid')}) at "
                f"{_rfc3339_seconds(str(lock.get('timestamp', '')))}"
            )
        raise CliError("\n".join(lines))

    def lock(self) -> Path:
        self._check_for_lock(None)
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        own = self.lock_dir / f"{uuid.uuid4()}.json"
        content = _lock_content(os.getpid(), getpass.getuser(), socket.gethostname())
        own.write_text(json.dumps(content), encoding="utf-8")
        try:
            self._check_for_lock(own)
        except CliError:
            own.unlink(missing_ok=True)
            raise
        return own

    # -- history --

    def history(self) -> list[dict[str, Any]]:
        if not self.history_dir.is_dir():
            return []
        files = sorted(self.history_dir.glob("*.history.json"), reverse=True)
        return [json.loads(p.read_text(encoding="utf-8")) for p in files]

    def add_history(self, entry: dict[str, Any]) -> None:
        done = self.history_dir.glob("*.history.json") if self.history_dir.is_dir() else ()
        entry["version"] = sum(1 for _ in done) + 1
        stamp = time.time_ns()
        _write_json(self.history_dir / f"{self.name}-{stamp}.history.json", entry)
        if self.path.exists():
            self.history_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, self.history_dir / f"{self.name}-{stamp}.checkpoint.json")


def _rfc3339_seconds(stamp: str) -> str:
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", stamp)
    if not match:
        return stamp
    zone = match.group(3) or "Z"
    return match.group(1) + ("Z" if zone in ("Z", "+00:00") else zone)


# --------------------------------------------------------------------------------------------
# Context: one CLI invocation
# --------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, root: Path, argv: list[str], env: Mapping[str, str]) -> None:
        self.root = root
        self.argv = argv
        self.env = env
        self.cwd = Path.cwd()
        self.args = parse_args(argv)
        scenario_path = root / "scenario.json"
        self.scenario: dict[str, Any] = (
            json.loads(scenario_path.read_text(encoding="utf-8")) if scenario_path.exists() else {}
        )
        self._project: Project | None = None
        self._backend: Backend | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = find_project(self.cwd)
        return self._project

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            url = self.env.get("PULUMI_BACKEND_URL") or (
                (self.project.settings.get("backend") or {}).get("url")
            )
            if not url:
                raise CliError(
                    "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"
                )
            self._backend = Backend(str(url), self.root)
        return self._backend

    def workspace_file(self) -> Path:
        digest = hashlib.sha256(str(self.project.directory).encode()).hexdigest()[:16]
        return self.root / "workspaces" / f"{self.project.name}-{digest}-workspace.json"

    def current_stack(self) -> str | None:
        path = self.workspace_file()
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8")).get("stack")
        return None

    def select(self, stack: str) -> None:
        _write_json(self.workspace_file(), {"stack": stack})

    def stack_name(self, positional: int | None = None) -> str:
        name = self.args.value("--stack", "-s")
        if name is None and positional is not None and len(self.args.positionals) > positional:
            name = self.args.positionals[positional]
        if name is None:
            name = self.current_stack()
        if not name:
            raise CliError("no stack selected; please use `pulumi stack select` to choose one")
        return name

    def store(self, stack: str, *, must_exist: bool = True) -> StackStore:
        parts = stack.split("/")
        project = parts[-2] if len(parts) == 3 else self.project.name
        store = StackStore(self.backend, project, stack)
        if must_exist and not store.exists():
            raise CliError(f"no stack named '{store.name}' found")
        return store

    def stack_spec(self, stack: str) -> dict[str, Any]:
        stacks: dict[str, Any] = self.scenario.get("stacks") or {}
        if _short(stack) in stacks:
            return stacks[_short(stack)]
        for pattern, spec in stacks.items():
            if fnmatch.fnmatchcase(_short(stack), pattern):
                return spec
        return {}

    # -- stack config file (Pulumi.<stack>.yaml next to Pulumi.yaml) --

    def config_path(self, stack: str) -> Path:
        return self.project.directory / f"Pulumi.{_short(stack)}.yaml"

    def load_config_file(self, stack: str) -> dict[str, Any]:
        path = self.config_path(stack)
        if path.exists():
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {}

    def save_config_file(self, stack: str, data: dict[str, Any]) -> None:
        self.config_path(stack).write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")

    def qualify(self, key: str) -> str:
        return key if ":" in key else f"{self.project.name}:{key}"

    def config_values(self, stack: str) -> dict[str, tuple[Any, bool]]:
        """``{qualified key: (plaintext value, secret)}`` from the stack's config file."""
        values: dict[str, tuple[Any, bool]] = {}
        for key, raw in (self.load_config_file(stack).get("config") or {}).items():
            if isinstance(raw, dict) and set(raw) == {"secure"}:
                values[key] = (_decode_secure(str(raw["secure"])), True)
            else:
                values[key] = (raw, False)
        return values

    # -- secrets provider --

    def passphrase(self) -> str | None:
        if "PULUMI_CONFIG_PASSPHRASE" in self.env:
            return self.env["PULUMI_CONFIG_PASSPHRASE"]
        file = self.env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if file:
            try:
                return Path(file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CliError(f"unable to read PULUMI_CONFIG_PASSPHRASE_FILE: {exc}") from exc
        return None

    def check_secrets(self, store: StackStore) -> None:
        """Open the stack's secrets manager as the CLI does before touching config or state."""
        latest = store.load()
        provider = (latest.get("secrets_providers") or {}).get("type", "passphrase")
        if provider != "passphrase":
            return
        phrase = self.passphrase()
        if phrase is None:
            raise CliError(NO_PHRASE_TEXT)
        config = self.load_config_file(store.name)
        salt = config.get("encryptionsalt") or (
            (latest.get("secrets_providers") or {}).get("state") or {}
        ).get("salt")
        if salt and salt != _salt_for(phrase, salt):
            raise CliError(BAD_PHRASE_TEXT)
        if salt and not config.get("encryptionsalt"):
            config["encryptionsalt"] = salt
            self.save_config_file(store.name, config)


def _salt_for(phrase: str, existing: str | None = None) -> str:
    """``v1:<salt>:v1:<check>``: a fake of the passphrase provider's salt + encrypted check."""
    salt = existing.split(":")[1] if existing else base64.b64encode(os.urandom(8)).decode()
    check = hashlib.sha256(f"{salt}:{phrase}".encode()).digest()[:12]
    return f"v1:{salt}:v1:{base64.b64encode(check).decode()}"


def _encode_secure(value: Any) -> str:
    return "v1:" + base64.b64encode(("fake:" + json.dumps(value)).encode()).decode()


def _decode_secure(secure: str) -> Any:
    with contextlib.suppress(ValueError):
        raw = base64.b64decode(secure.removeprefix("v1:")).decode()
        if raw.startswith("fake:"):
            return json.loads(raw.removeprefix("fake:"))
    return SECRET_MASK


# --------------------------------------------------------------------------------------------
# Engine events
# --------------------------------------------------------------------------------------------


class EventLog:
    """Engine events to ``--event-log``: the SDK's gRPC Events server (tcp://) or a JSON file."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self.sequence = 0
        self._file: Any = None
        self._queue: queue.Queue[str | None] | None = None
        self._channel: Any = None
        self._call: Any = None

    def emit(self, **payload: Any) -> None:
        if not self.target:
            return
        event = {"sequence": self.sequence, "timestamp": int(time.time()), **payload}
        self.sequence += 1
        line = json.dumps(event, separators=(",", ":"))
        if self.target.startswith("tcp://"):
            self._grpc().put(line)
        else:
            if self._file is None:
                self._file = open(self.target, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._file.write(line + "\n")
            self._file.flush()

    def _grpc(self) -> queue.Queue[str | None]:
        if self._queue is None:
            import grpc
            from pulumi.runtime.proto import events_pb2, events_pb2_grpc

            pending: queue.Queue[str | None] = queue.Queue()

            def requests() -> Iterator[Any]:
                while (item := pending.get()) is not None:
                    yield events_pb2.EventRequest(event=item)

            self._channel = grpc.insecure_channel(self.target.removeprefix("tcp://"))
            stub = events_pb2_grpc.EventsStub(self._channel)
            self._call = stub.StreamEvents.future(requests())
            self._queue = pending
        return self._queue

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._queue is not None:
            self._queue.put(None)
            try:
                self._call.result(timeout=30)
            except Exception as exc:  # the CLI logs and carries on
                _err(f"warning: could not deliver engine events: {exc}")
            self._channel.close()
            self._queue = None


def _state_meta(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": resource.get("type", ""),
        "urn": resource.get("urn", ""),
        "custom": resource.get("custom", True),
        "id": resource.get("id", ""),
        "parent": resource.get("parent", ""),
        "provider": resource.get("provider", ""),
        "inputs": resource.get("inputs", {}),
        "outputs": resource.get("outputs", {}),
    }


# --------------------------------------------------------------------------------------------
# Signals (pkg/backend/cancellation_scope.go)
# --------------------------------------------------------------------------------------------


class Cancellation:
    """First SIGINT/SIGTERM: cancel after the step in flight. Second: terminate at once."""

    def __init__(self, preview: bool) -> None:
        self.preview = preview
        self.requested = False
        self.notice = ""
        self.lock_path: Path | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        sigterm = signum == signal.SIGTERM
        if not self.requested:
            self.requested = True
            if sigterm:
                message = (
                    "SIGTERM received; cancelling. If you would like to terminate immediately, "
                    "send SIGTERM again.\n"
                )
            else:
                message = (
                    "^C received; cancelling. If you would like to terminate immediately, "
                    "press ^C again.\n"
                )
            if not self.preview:
                message += (
                    "Note that terminating immediately may lead to orphaned resources and other "
                    "inconsistencies.\n"
                )
            self.notice = message
            os.write(1, message.encode())  # not sys.stdout: a handler must not re-enter it
            return
        os.write(1, f"{'SIGTERM' if sigterm else '^C'} received; terminating\n".encode())
        if self.lock_path is not None:
            self.lock_path.unlink(missing_ok=True)
        os._exit(EXIT_FAILURE)


# --------------------------------------------------------------------------------------------
# preview / up / refresh / destroy
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    op: str  # create/update/delete/replace/same, or "refresh" (a refresh that found no drift)
    type: str
    name: str
    urn: str
    spec: dict[str, Any]
    refresh: bool = False  # part of a refresh (drift) rather than the program's update

    @property
    def count_as(self) -> str:
        return "same" if self.op == "refresh" else self.op


def _steps_from(specs: list[dict[str, Any]], store: StackStore, *, refresh: bool) -> list[Step]:
    steps = []
    for spec in specs:
        op = str(spec.get("op", "same"))
        allowed = DRIFT_OPS if refresh else STEP_OPS
        if op not in allowed:
            raise CliError(f"fake pulumi: unsupported op {op!r} in scenario (allowed: {allowed})")
        type_, name = str(spec.get("type", "fake:index:Resource")), str(spec.get("name", "r"))
        urn = str(spec.get("urn") or store.urn(type_, name))
        steps.append(Step(op, type_, name, urn, dict(spec), refresh))
    return steps


class Operation:
    """One engine run; ``kind`` is preview, update (``up``), refresh or destroy."""

    def __init__(self, ctx: Ctx, kind: str, cancellation: Cancellation) -> None:
        self.ctx = ctx
        self.kind = kind
        self.args = ctx.args
        self.dry_run = kind == "preview" or self.args.has("--preview-only")
        self.cancellation = cancellation
        self.events = EventLog(self.args.value("--event-log"))
        self.json_out = kind == "preview" and self.args.has("--json")
        self.changes: Counter[str] = Counter()
        self.diagnostics: list[str] = []
        self.json_steps: list[dict[str, Any]] = []

    # -- display --

    def show(self, text: str = "") -> None:
        if not self.json_out:
            _out(text)

    def diag(self, severity: str, message: str, urn: str = "") -> None:
        self.events.emit(
            diagnosticEvent={
                "urn": urn,
                "prefix": f"{severity}: ",
                "message": message + "\n",
                "color": self.args.value("--color", default="never"),
                "severity": severity,
                "ephemeral": False,
            }
        )
        self.diagnostics.append(f"    {severity}: {message}")

    # -- the run --

    def run(self) -> int:
        ctx = self.ctx
        stack = ctx.stack_name()
        store = ctx.store(stack)
        ctx.check_secrets(store)
        spec = ctx.stack_spec(stack)
        lock_path = None if self.dry_run else store.lock()
        self.cancellation.lock_path = lock_path
        started = time.time()
        try:
            return self._run_locked(store, spec, started)
        finally:
            if lock_path is not None:
                lock_path.unlink(missing_ok=True)
            self.events.close()

    def _run_locked(self, store: StackStore, spec: dict[str, Any], started: float) -> int:
        args = self.args
        latest = store.load()
        config = self.ctx.config_values(store.name)
        self.events.emit(
            preludeEvent={
                "config": {k: (SECRET_MASK if s else _plain(v)) for k, (v, s) in config.items()}
            }
        )
        title = {
            "preview": "Previewing update",
            "update": "Updating",
            "refresh": "Previewing refresh" if self.dry_run else "Refreshing",
            "destroy": "Previewing destroy" if self.dry_run else "Destroying",
        }[self.kind]
        self.show(f"{title} ({store.name}):")
        self.show()

        previous_pending = list(latest["pending_operations"])
        warn = not self.dry_run and self.kind != "refresh" and not args.has("--refresh")
        if previous_pending and warn:
            self._pending_warning(previous_pending)

        steps = self._plan(store, spec, latest)
        fail = spec.get("fail") or {}
        fail_ops = fail.get("ops") or ["up"]
        fails_here = ("up" if self.kind == "update" else self.kind) in fail_ops
        fail_at = fail.get("at_step") if fails_here else None
        failed = False
        canceled = False
        default_seconds = float(spec.get("step_seconds", 0) or 0)
        for index, step in enumerate(steps):
            if self.cancellation.requested:
                canceled = True
                break
            error = str(fail.get("message", "step failed")) if index == fail_at else None
            ok = self._execute(store, latest, step, default_seconds, error)
            if not ok:
                failed = True
                if not args.has("--continue-on-error"):
                    break
        if self.cancellation.requested and not failed:
            canceled = True
        if self.cancellation.notice:
            self.events.emit(stdoutEvent={"message": self.cancellation.notice, "color": "never"})

        verb = "preview" if self.dry_run else "update"
        if failed:
            self.diag("error", f"{verb} failed")
        elif canceled:
            self.diag("error", f"{verb} canceled")
        duration = int(time.time() - started)
        self.events.emit(
            summaryEvent={
                "maybeCorrupt": False,
                "durationSeconds": duration,
                "resourceChanges": dict(self.changes),
                "PolicyPacks": {},
            }
        )
        if not self.dry_run:
            self._finish_state(
                store, latest, previous_pending, spec, ok=not failed and not canceled
            )
            store.add_history(self._history_entry(started, failed or canceled, config))
        if self.kind == "preview" and args.value("--save-plan"):
            plan = {"resourcePlans": {s["urn"]: {"steps": [s["op"]]} for s in self.json_steps}}
            _write_json(Path(str(args.value("--save-plan"))), plan)
        updated = self.kind == "update" and not (self.dry_run or failed or canceled)
        self._display_summary(duration, spec if updated else {})
        self.events.emit(cancelEvent={})

        if failed:
            _err(f"error: {fail.get('message', 'step failed')}")
            return EXIT_FAILURE
        if canceled:
            _err(f"error: {verb} canceled")
            return EXIT_FAILURE
        if args.has("--expect-no-changes") and any(op != "same" for op in self.changes):
            occurred = "were proposed" if self.kind == "preview" else "occurred"
            _err(f"error: no changes were expected but changes {occurred}")
            return EXIT_FAILURE
        return 0

    def _pending_warning(self, pending: list[dict[str, Any]]) -> None:
        lines = "".join(
            f"  * {p.get('resource', {}).get('urn', '')}, interrupted while {p.get('type', '')}\n"
            for p in pending
        )
        self.diag(
            "warning",
            "Attempting to deploy or update resources "
            f"with {len(pending)} pending operations from previous deployment.\n"
            + lines
            + PENDING_WARNING_TEXT,
        )

    def _plan(self, store: StackStore, spec: dict[str, Any], latest: dict[str, Any]) -> list[Step]:
        args = self.args
        drift = _steps_from(list(spec.get("drift") or []), store, refresh=True)
        custom = [r for r in latest["resources"] if r.get("custom", True)]
        steps: list[Step] = []
        if self.kind == "refresh":
            by_urn = {s.urn: s for s in drift}
            for resource in custom:
                urn = resource["urn"]
                name = urn.rsplit("::", 1)[-1]
                steps.append(
                    by_urn.pop(urn, None)
                    or Step("refresh", resource.get("type", ""), name, urn, {}, refresh=True)
                )
            steps.extend(by_urn.values())
        else:
            if args.has("--refresh"):
                steps.extend(drift)
            if self.kind == "destroy":
                if "destroy_steps" in spec:
                    steps.extend(_steps_from(list(spec["destroy_steps"]), store, refresh=False))
                else:
                    for resource in reversed(custom):
                        urn = resource["urn"]
                        name = urn.rsplit("::", 1)[-1]
                        steps.append(Step("delete", resource.get("type", ""), name, urn, {}))
            else:
                steps.extend(_steps_from(list(spec.get("steps") or []), store, refresh=False))
        targets, excludes = args.values("--target"), args.values("--exclude")
        if targets:
            steps = [s for s in steps if any(fnmatch.fnmatchcase(s.urn, t) for t in targets)]
        if excludes:
            steps = [s for s in steps if not any(fnmatch.fnmatchcase(s.urn, e) for e in excludes)]
        for urn in args.values("--replace"):
            for step in steps:
                if step.urn == urn and step.op in ("same", "update") and not step.refresh:
                    step.op = "replace"
        return steps

    def _metadata(self, step: Step, op: str, old: dict[str, Any] | None) -> dict[str, Any]:
        new_state = None
        if op not in ("delete", "delete-replaced"):
            new_state = _state_meta(_resource_for(step, old))
        meta: dict[str, Any] = {
            "op": op,
            "urn": step.urn,
            "type": step.type,
            "provider": str(step.spec.get("provider", "")),
            "old": _state_meta(old) if old else None,
            "new": new_state,
        }
        if op in ("update", "replace", "create-replacement"):
            diffs = [str(d) for d in step.spec.get("diffs", ["value"])]
            kind = "update" if op == "update" else "update-replace"
            meta["diffs"] = diffs
            meta["detailedDiff"] = {d: {"diffKind": kind, "inputDiff": True} for d in diffs}
            if op != "update":
                meta["keys"] = diffs
        if op in ("replace", "create-replacement", "delete-replaced"):
            meta["logical"] = op == "replace"
        return {k: v for k, v in meta.items() if v is not None}

    def _step_event(self, kind: str, step: Step, op: str, old: dict[str, Any] | None) -> None:
        self.events.emit(
            **{kind: {"metadata": self._metadata(step, op, old), "planning": self.dry_run}}
        )

    def _execute(
        self,
        store: StackStore,
        latest: dict[str, Any],
        step: Step,
        default_seconds: float,
        error: str | None,
    ) -> bool:
        old = next((r for r in latest["resources"] if r["urn"] == step.urn), None)
        ops = (
            ["create-replacement", "replace", "delete-replaced"]
            if step.op == "replace"
            else [step.op]
        )
        self._step_event("resourcePreEvent", step, ops[0], old)
        pending_type = None if (self.dry_run or step.refresh) else PENDING_TYPE.get(step.op)
        pending = None
        if pending_type:
            pending = {"resource": _resource_for(step, old), "type": pending_type}
            latest["pending_operations"].append(pending)
            store.save(latest)
        symbol = SYMBOL.get(step.op, " ")
        if step.op not in ("same", "refresh") and not self.dry_run:
            self.show(f" {symbol:>2}  {step.type} {step.name} {_ing(step.op)}")
        time.sleep(float(step.spec.get("seconds", default_seconds)))
        if pending is not None:
            latest["pending_operations"].remove(pending)
        if error is not None:
            self.diag("error", error, step.urn)
            self.events.emit(
                resOpFailedEvent={
                    "metadata": self._metadata(step, ops[0], old),
                    "status": 0,
                    "steps": 0,
                }
            )
            self.show(f" {symbol:>2}  {step.type} {step.name} **{_ing(step.op)} failed** 1 error")
            if pending is not None:
                store.save(latest)
            return False
        if not self.dry_run:
            _apply(latest, step, old)
            store.save(latest)
        self._step_event("resOutputsEvent", step, ops[0], old)
        for op in ops[1:]:  # a replace: the logical replace, then deleting the replaced one
            self._step_event("resourcePreEvent", step, op, old)
            self._step_event("resOutputsEvent", step, op, old)
        self.changes[step.count_as] += 1
        word = PLAN_WORD[step.op] if self.dry_run else DONE_WORD[step.op]
        if step.op not in ("same", "refresh"):
            self.show(f" {symbol:>2}  {step.type} {step.name} {word}")
        self.json_steps.append({"op": step.op, "urn": step.urn, "type": step.type})
        return True

    def _finish_state(
        self,
        store: StackStore,
        latest: dict[str, Any],
        previous_pending: list[dict[str, Any]],
        spec: dict[str, Any],
        *,
        ok: bool,
    ) -> None:
        # The engine keeps pending CREATEs across updates; refresh drops the others, and the
        # creates too with --clear-pending-creates (non-interactive default: skip them).
        clear_creates = self.kind == "refresh" and self.args.has("--clear-pending-creates")
        latest["pending_operations"] = [
            p for p in previous_pending if p.get("type") == "creating" and not clear_creates
        ]
        stack_urn = store.stack_urn()
        others = [r for r in latest["resources"] if r["urn"] != stack_urn]
        if self.kind == "update" and ok:
            secret = set(spec.get("secret_outputs") or [])
            outputs = {
                k: (_encode_secret(v) if k in secret else v)
                for k, v in (spec.get("outputs") or {}).items()
            }
            stack_resource = {
                "urn": stack_urn,
                "custom": False,
                "type": "pulumi:pulumi:Stack",
                "outputs": outputs,
            }
            latest["resources"] = [stack_resource, *others]
        elif self.kind == "destroy" and ok and not others:
            latest["resources"] = []
        store.save(latest)

    def _history_entry(
        self, started: float, failed: bool, config: dict[str, tuple[Any, bool]]
    ) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "startTime": int(started),
            "message": self.args.value("--message", "-m", default="") or "",
            "environment": {"exec.kind": self.args.value("--exec-kind", default="cli") or "cli"},
            "config": {k: {"value": v, "secret": s} for k, (v, s) in config.items()},
            "result": "failed" if failed else "succeeded",
            "endTime": int(time.time()),
            "resourceChanges": dict(self.changes),
        }

    def _display_summary(self, duration: int, spec: dict[str, Any]) -> None:
        if self.json_out:
            digest = {
                "steps": self.json_steps,
                "changeSummary": dict(self.changes),
                "duration": duration * 1_000_000_000,
                "diagnostics": self.diagnostics,
            }
            _out(json.dumps(digest, indent=4))
            return
        if spec.get("outputs"):
            self.show()
            self.show("Outputs:")
            secret = set(spec.get("secret_outputs") or [])
            for key, value in sorted(spec["outputs"].items()):
                self.show(f"    {key}: {SECRET_MASK if key in secret else json.dumps(value)}")
        if self.diagnostics:
            self.show()
            self.show("Diagnostics:")
            for line in self.diagnostics:
                self.show(line)
        self.show()
        self.show("Resources:")
        words = PLAN_WORD if self.dry_run else DONE_WORD
        for op in ("create", "update", "delete", "replace"):
            if self.changes[op]:
                self.show(f"    {SYMBOL[op]} {self.changes[op]} {words[op]}")
        changed = sum(n for op, n in self.changes.items() if op != "same")
        if changed:
            self.show(f"    {changed} changes. {self.changes['same']} unchanged")
        else:
            self.show(f"    {self.changes['same']} unchanged")
        self.show()
        self.show(f"Duration: {duration}s")


def _ing(op: str) -> str:
    return {"create": "creating", "update": "updating", "delete": "deleting"}.get(
        op, f"{op.rstrip('e')}ing"
    )


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _resource_for(step: Step, old: dict[str, Any] | None) -> dict[str, Any]:
    base = dict(old or {})
    digest = hashlib.sha256(step.urn.encode()).hexdigest()[:7]
    base.update(
        {
            "urn": step.urn,
            "custom": True,
            "id": str(step.spec.get("id") or base.get("id") or f"{step.name}-{digest}"),
            "type": step.type,
            "inputs": step.spec.get("inputs", base.get("inputs", {})),
            "outputs": step.spec.get("outputs", base.get("outputs", {})),
        }
    )
    if step.spec.get("provider"):
        base["provider"] = step.spec["provider"]
    return base


def _apply(latest: dict[str, Any], step: Step, old: dict[str, Any] | None) -> None:
    resources: list[dict[str, Any]] = latest["resources"]
    if step.op == "refresh":
        return
    if step.op == "delete":
        latest["resources"] = [r for r in resources if r["urn"] != step.urn]
        return
    new = _resource_for(step, old)
    if old is None:
        resources.append(new)
    else:
        resources[resources.index(old)] = new


# --------------------------------------------------------------------------------------------
# Other commands
# --------------------------------------------------------------------------------------------


def cmd_version(ctx: Ctx) -> int:
    _out(f"v{ctx.scenario.get('version', DEFAULT_VERSION)}")
    return 0


def cmd_stack_select(ctx: Ctx) -> int:
    stack = ctx.stack_name(positional=2)
    store = ctx.store(stack)
    ctx.select(store.name)
    return 0


def cmd_stack_init(ctx: Ctx) -> int:
    stack = ctx.stack_name(positional=2)
    store = ctx.store(stack, must_exist=False)
    if store.exists():
        raise CliError(f"stack '{store.fq_name}' already exists")
    provider = ctx.args.value("--secrets-provider", default="passphrase") or "passphrase"
    providers: dict[str, Any] = {"type": provider.split("://", 1)[0]}
    config = ctx.load_config_file(store.name)
    if providers["type"] == "passphrase":
        phrase = ctx.passphrase()
        if phrase is None:
            raise CliError(NO_PHRASE_TEXT)
        salt = config.get("encryptionsalt")
        if salt and salt != _salt_for(phrase, salt):
            raise CliError(BAD_PHRASE_TEXT)
        salt = salt or _salt_for(phrase)
        config["encryptionsalt"] = salt
        providers["state"] = {"salt": salt}
    else:
        config["secretsprovider"] = provider
        providers["state"] = {"url": provider}
    ctx.backend.ensure_meta()
    store.save({"secrets_providers": providers, "resources": [], "pending_operations": []})
    ctx.save_config_file(store.name, config)
    if not ctx.args.has("--no-select"):
        ctx.select(store.name)
    _out(f"Created stack '{store.name}'")
    return 0


def cmd_stack_ls(ctx: Ctx) -> int:
    stacks_dir = ctx.backend.dir / "stacks" / ctx.project.name
    current = ctx.current_stack()
    listing = []
    for path in sorted(stacks_dir.glob("*.json")) if stacks_dir.is_dir() else []:
        store = StackStore(ctx.backend, ctx.project.name, path.stem)
        history = store.history()
        entry: dict[str, Any] = {
            "name": store.name,
            "current": store.name == current,
            "updateInProgress": bool(store.lock_files()),
            "resourceCount": len(store.load()["resources"]),
            "url": ctx.backend.url_for(store.path),
        }
        if history:
            entry["lastUpdate"] = time.strftime(
                HISTORY_TIME_FORMAT, time.gmtime(history[0]["endTime"])
            )
        listing.append(entry)
    _out(json.dumps(listing, indent=4))
    return 0


def cmd_stack_rm(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name(positional=2))
    latest = store.load()
    if latest["resources"] and not ctx.args.has("--force"):
        raise CliError(
            f"'{store.name}' still has resources; removal rejected. Possible actions:\n"
            f"- Make sure that '{store.name}' is the stack that you want to destroy\n"
            "- Run `pulumi destroy` to delete the resources, then run `pulumi stack rm`\n"
            "- Run `pulumi stack rm --force` to override this error"
        )
    own = store.lock()
    try:
        store.path.unlink()
        for suffix in (".bak",):
            store.path.with_name(store.path.name + suffix).unlink(missing_ok=True)
        if not ctx.args.has("--preserve-config"):
            ctx.config_path(store.name).unlink(missing_ok=True)
    finally:
        own.unlink(missing_ok=True)
    _out(f"Stack '{store.name}' has been removed!")
    return 0


def cmd_stack_output(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name())
    latest = store.load()
    stack_urn = store.stack_urn()
    outputs = next((r["outputs"] for r in latest["resources"] if r["urn"] == stack_urn), {})
    show = ctx.args.has("--show-secrets")
    shown = {}
    for key, raw in outputs.items():
        value, secret = _decode_secret(raw)
        shown[key] = SECRET_MASK if secret and not show else value
    names = ctx.args.positionals[2:]
    if names:
        if names[0] not in shown:
            raise CliError(f"current stack does not have output property '{names[0]}'")
        value = shown[names[0]]
        _out(json.dumps(value) if ctx.args.has("--json") else _plain(value))
    else:
        _out(json.dumps(shown, indent=2))
    return 0


def cmd_stack_history(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name())
    show = ctx.args.has("--show-secrets")
    entries = []
    for entry in store.history():
        config = {}
        for key, item in entry.get("config", {}).items():
            shown = {"secret": item["secret"], "object": False}
            if show or not item["secret"]:
                shown["value"] = _plain(item["value"])
            config[key] = shown
        entries.append(
            {
                "version": entry["version"],
                "kind": entry["kind"],
                "startTime": time.strftime(HISTORY_TIME_FORMAT, time.gmtime(entry["startTime"])),
                "message": entry["message"],
                "environment": entry["environment"],
                "config": config,
                "result": entry["result"],
                "endTime": time.strftime(HISTORY_TIME_FORMAT, time.gmtime(entry["endTime"])),
                "resourceChanges": entry["resourceChanges"],
            }
        )
    page_size = ctx.args.value("--page-size")
    if page_size:
        page = int(ctx.args.value("--page", default="1") or 1)
        size = int(page_size)
        entries = entries[(page - 1) * size : page * size]
    _out(json.dumps(entries, indent=4))
    return 0


def cmd_stack_export(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name())
    _out(json.dumps({"version": 3, "deployment": store.load()}, indent=4))
    return 0


def cmd_stack_import(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name())
    file = ctx.args.value("--file")
    text = Path(file).read_text(encoding="utf-8") if file else sys.stdin.read()
    deployment = json.loads(text).get("deployment") or {}
    own = store.lock()
    try:
        store.save(deployment)
    finally:
        own.unlink(missing_ok=True)
    _out("Import complete.")
    return 0


def cmd_cancel(ctx: Ctx) -> int:
    store = ctx.store(ctx.stack_name(positional=1))
    for path in store.lock_files():  # DIY: delete every lock of the stack, stop nothing
        path.unlink(missing_ok=True)
    _out(f"The currently running update for '{store.name}' has been canceled!")
    return 0


def _set_config(ctx: Ctx, config: dict[str, Any], key: str, value: Any, secret: bool) -> None:
    stored: Any = {"secure": _encode_secure(value)} if secret else value
    if ctx.args.has("--path") and "." in key.split(":", 1)[-1]:
        head, *rest = key.split(".")
        node = config.setdefault(ctx.qualify(head), {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = stored
    else:
        config[ctx.qualify(key)] = stored


def cmd_config(ctx: Ctx) -> int:
    sub = ctx.args.positionals[1] if len(ctx.args.positionals) > 1 else ""
    if sub == "set-all":
        ctx.args = parse_args(ctx.argv, SET_ALL_VALUE_FLAGS)
    store = ctx.store(ctx.stack_name())
    data = ctx.load_config_file(store.name)
    config: dict[str, Any] = data.setdefault("config", {}) or {}
    data["config"] = config
    args = ctx.args
    if sub in ("set", "set-all"):
        if args.has("--secret") or args.has("--json"):
            ctx.check_secrets(store)
        if sub == "set":
            key, value = args.positionals[2], args.positionals[3]
            _set_config(ctx, config, key, value, args.has("--secret"))
        elif args.value("--json"):
            for key, item in json.loads(str(args.value("--json"))).items():
                value = item.get("objectValue", item.get("value"))
                _set_config(ctx, config, key, value, bool(item.get("secret")))
        else:
            for secret, flag in ((False, "--plaintext"), (True, "--secret")):
                for pair in args.values(flag):
                    key, _, value = pair.partition("=")
                    _set_config(ctx, config, key, value, secret)
        ctx.save_config_file(store.name, data)
        return 0
    if sub in ("rm", "rm-all"):
        for key in args.positionals[2:]:
            config.pop(ctx.qualify(key), None)
        ctx.save_config_file(store.name, data)
        return 0
    if sub == "refresh":
        return 0
    values = ctx.config_values(store.name)
    if sub == "get":
        key = ctx.qualify(args.positionals[2])
        if key not in values:
            raise CliError(f"configuration key '{key}' not found for stack '{store.name}'")
        value, secret = values[key]
        if args.has("--json"):
            _out(json.dumps({"value": _plain(value), "secret": secret}, indent=2))
        else:
            _out(_plain(value))
        return 0
    show = args.has("--show-secrets")
    listing: dict[str, Any] = {}
    for key, (value, secret) in sorted(values.items()):
        item: dict[str, Any] = {"secret": secret}
        if show or not secret:
            item["value"] = _plain(value)
            if isinstance(value, dict | list):
                item["objectValue"] = value
        listing[key] = item
    _out(json.dumps(listing, indent=2))
    return 0


def cmd_plugin(ctx: Ctx) -> int:
    sub = ctx.args.positionals[1] if len(ctx.args.positionals) > 1 else ""
    path = ctx.root / "plugins.json"
    plugins: list[dict[str, Any]] = (
        json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    )
    if sub == "install":
        kind, name, version = (ctx.args.positionals[2:5] + ["", "", ""])[:3]
        stamp = time.strftime(HISTORY_TIME_FORMAT, time.gmtime())
        plugins = [p for p in plugins if (p["kind"], p["name"]) != (kind, name)]
        plugins.append(
            {
                "name": name,
                "kind": kind,
                "version": version.removeprefix("v"),
                "size": 0,
                "installTime": stamp,
                "lastUsedTime": stamp,
                "server": ctx.args.value("--server"),
            }
        )
        _write_json(path, plugins)
    elif sub == "ls":
        _out(json.dumps([{k: v for k, v in p.items() if k != "server"} for p in plugins]))
    elif sub == "rm":
        kind = ctx.args.positionals[2] if len(ctx.args.positionals) > 2 else ""
        names = set(ctx.args.positionals[3:4])
        plugins = [p for p in plugins if p["kind"] != kind or (names and p["name"] not in names)]
        _write_json(path, plugins)
    return 0


def cmd_whoami(ctx: Ctx) -> int:
    user = getpass.getuser()
    if ctx.args.has("--json"):
        _out(json.dumps({"user": user, "organizations": [], "url": ctx.backend.url}, indent=2))
    else:
        _out(user)
    return 0


def cmd_about(ctx: Ctx) -> int:
    version = ctx.scenario.get("version", DEFAULT_VERSION)
    if ctx.args.has("--json"):
        _out(json.dumps({"cliVersion": version, "language": "python", "backend": {}}, indent=2))
    else:
        _out(f"CLI\nVersion      {version}\nGo Version   fake\n")
    return 0


def cmd_help(_ctx: Ctx) -> int:
    _out("Usage:\n  pulumi [command]\n\n(fake pulumi CLI for tests; no --remote support)")
    return 0


COMMANDS: dict[tuple[str, ...], Callable[[Ctx], int]] = {
    ("version",): cmd_version,
    ("stack", "select"): cmd_stack_select,
    ("stack", "init"): cmd_stack_init,
    ("stack", "ls"): cmd_stack_ls,
    ("stack", "rm"): cmd_stack_rm,
    ("stack", "output"): cmd_stack_output,
    ("stack", "history"): cmd_stack_history,
    ("stack", "export"): cmd_stack_export,
    ("stack", "import"): cmd_stack_import,
    ("config",): cmd_config,
    ("plugin",): cmd_plugin,
    ("cancel",): cmd_cancel,
    ("whoami",): cmd_whoami,
    ("about",): cmd_about,
}
OPERATIONS = {
    "preview": "preview",
    "up": "update",
    "update": "update",
    "refresh": "refresh",
    "destroy": "destroy",
}


def _record_call(root: Path, argv: list[str], env: Mapping[str, str]) -> None:
    shown = {
        k: ("<set>" if "PASSPHRASE" in k and k != "PULUMI_CONFIG_PASSPHRASE_FILE" else v)
        for k, v in env.items()
        if k.startswith("PULUMI_")
    }
    record = {
        "argv": argv,
        "ts": time.time(),
        "pid": os.getpid(),
        "cwd": str(Path.cwd()),
        "env": shown,
    }
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str], root: str | Path | None = None) -> int:
    """Run one CLI call; ``root`` (or ``$PULUMI_FAKE_ROOT``) holds scenario.json, calls.jsonl."""
    root = root or os.environ.get("PULUMI_FAKE_ROOT")
    if not root:
        _err("error: fake pulumi: no root (use install_fake_pulumi or set PULUMI_FAKE_ROOT)")
        return 2
    root_path = Path(root)
    positionals = parse_args(argv).positionals
    command = positionals[0] if positionals else ""
    cancellation = None
    if command in OPERATIONS:
        is_preview = command == "preview" or "--preview-only" in argv
        cancellation = Cancellation(preview=is_preview)
        cancellation.install()  # before the call is recorded: tests signal after seeing it
    _record_call(root_path, argv, os.environ)
    try:
        ctx = Ctx(root_path, argv, os.environ)
        if ctx.scenario.get("missing"):
            _err("pulumi: command not found (the scenario marks the engine missing)")
            return 127
        if ctx.args.has("--help", "-h"):
            return cmd_help(ctx)
        if cancellation is not None:
            return Operation(ctx, OPERATIONS[command], cancellation).run()
        for length in (2, 1):
            handler = COMMANDS.get(tuple(positionals[:length]))
            if handler is not None:
                return handler(ctx)
        return 0  # unknown commands are accepted
    except CliError as exc:
        _err(f"error: {exc.message}")
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
