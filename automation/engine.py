"""The one module that drives the Pulumi engine (``pulumi.automation``).

Every stack gets its own work directory (parallel stacks never share workspace files) and runs
the project's program from ``stacks/`` as a local program, in its own engine process: inline
Python programs of several stacks in one process are not safe (pulumi/pulumi#7782). The CLI is
a pinned version, installed on first use into ``.state/pulumi-cli/<version>`` when it is not
there; the secrets provider is the passphrase; the backend comes from settings.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi.automation as auto
from pulumi.automation import events
from semver import VersionInfo

from automation.errors import EngineMissingError
from automation.settings import Settings
from stacks.naming import PLATFORM_STACK, tenant_slug

PROJECT = "dezky-infra"
OnEvent = Callable[[events.EngineEvent], None]
Stack = auto.Stack


@dataclass(frozen=True)
class OperationResult:
    """What the engine reported: resource changes by kind, and the stack's outputs."""

    changes: dict[str, int]
    outputs: dict[str, Any]


def _counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    # The SDK types the keys as OpType; the engine sends plain strings.
    return {str(getattr(op, "value", op)): count for op, count in (changes or {}).items()}


def ensure_cli(settings: Settings) -> auto.PulumiCommand:
    """The pinned Pulumi CLI: project-local, else on PATH at that version, else installed."""
    version = VersionInfo.parse(settings.pulumi_cli_version)
    for root in (str(settings.cli_root), None):
        if root is None and shutil.which("pulumi") is None:
            continue
        try:
            return auto.PulumiCommand(root=root, version=version)
        except (OSError, subprocess.CalledProcessError, auto.InvalidVersionError):
            continue
    if not settings.install_cli:
        raise EngineMissingError(
            f"the Pulumi CLI {version} is not in {settings.cli_root} nor on PATH, and "
            "DEZKY_INSTALL_PULUMI=0 forbids installing it"
        )
    try:
        return auto.PulumiCommand.install(root=str(settings.cli_root), version=version)
    except Exception as exc:  # the installer raises URLError, CalledProcessError, OSError
        raise EngineMissingError(
            f"the Pulumi CLI {version} is not installed and could not be installed into "
            f"{settings.cli_root} ({type(exc).__name__}); install it there or put it on PATH"
        ) from exc


class Engine:
    """Opens stacks and runs operations on them through the Automation API."""

    def __init__(self, settings: Settings, command: auto.PulumiCommand | None = None) -> None:
        self.settings = settings
        self._command = command
        self._plugins_installed = False
        # Parallel stacks share one Engine: install the CLI and plugins once, not concurrently.
        self._lock = threading.Lock()

    @property
    def command(self) -> auto.PulumiCommand:
        with self._lock:
            if self._command is None:
                self._command = ensure_cli(self.settings)
            return self._command

    def _env(self) -> dict[str, str]:
        return {
            "PULUMI_CONFIG_PASSPHRASE": self.settings.passphrase.get_secret_value(),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            # Hetzner Object Storage rejects aws-chunked checksums (RELIABILITY-PERF A6).
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            # Where the platform's playbooks live for its Ansible run (components.host).
            "DEZKY_REPO": str(self.settings.repo.resolve()),
        }

    def stack(self, name: str) -> auto.Stack:
        """Create or select ``name`` in its own work directory; write its config from settings."""
        work = self.settings.work_dir / name
        work.mkdir(parents=True, exist_ok=True)
        repo = self.settings.repo
        project = auto.ProjectSettings(
            name=PROJECT,
            runtime=auto.ProjectRuntimeInfo(
                name="python",
                options={
                    "toolchain": "pip",
                    "virtualenv": str(self.settings.venv or repo / ".venv"),
                },
            ),
            main=str(repo / "stacks"),
            backend=auto.ProjectBackend(url=self.settings.effective_backend_url),
        )
        options = auto.LocalWorkspaceOptions(
            work_dir=str(work),
            pulumi_home=str(self.settings.pulumi_home),
            pulumi_command=self.command,
            env_vars=self._env(),
            project_settings=project,
            secrets_provider="passphrase",
        )
        stack = auto.create_or_select_stack(stack_name=name, work_dir=str(work), opts=options)
        self._configure(stack)
        return stack

    def _configure(self, stack: auto.Stack) -> None:
        config = {"dezky:environment": auto.ConfigValue(self.settings.environment)}
        for key, (value, secret) in self.settings.provider_config.items():
            config[key] = auto.ConfigValue(value.get_secret_value(), secret=secret)
        if self.settings.kubeconfig is not None:
            text = self.settings.kubeconfig.read_text(encoding="utf-8")
            config["kubernetes:kubeconfig"] = auto.ConfigValue(text, secret=True)
        if tenant_slug(stack.name) is not None:
            config.update(_platform_endpoints(stack, skip=config.keys()))
        stack.set_all_config(config)
        with self._lock:
            if not self._plugins_installed:
                for plugin, version in self.settings.plugins.items():
                    stack.workspace.install_plugin(plugin, version)
                self._plugins_installed = True

    def preview(
        self,
        stack: auto.Stack,
        on_event: OnEvent,
        *,
        refresh: bool = False,
        expect_no_changes: bool = False,
    ) -> OperationResult:
        result = stack.preview(
            on_event=on_event,
            diff=True,
            refresh=refresh,
            expect_no_changes=expect_no_changes,
            suppress_outputs=True,
        )
        return OperationResult(_counts(result.change_summary), {})

    def up(self, stack: auto.Stack, on_event: OnEvent) -> OperationResult:
        result = stack.up(on_event=on_event, suppress_outputs=True, show_secrets=False)
        outputs = {k: v.value for k, v in result.outputs.items() if not v.secret}
        return OperationResult(_counts(result.summary.resource_changes), outputs)

    def refresh(
        self, stack: auto.Stack, on_event: OnEvent, *, clear_pending_creates: bool = False
    ) -> OperationResult:
        result = stack.refresh(on_event=on_event, clear_pending_creates=clear_pending_creates)
        return OperationResult(_counts(result.summary.resource_changes), {})

    def destroy(self, stack: auto.Stack, on_event: OnEvent) -> OperationResult:
        result = stack.destroy(on_event=on_event)
        return OperationResult(_counts(result.summary.resource_changes), {})

    def cancel(self, stack: auto.Stack) -> None:
        """Delete Pulumi's lock files of the stack; only after proving the holder is dead."""
        stack.cancel()


# Endpoints of the dynamic providers a tenant stack takes from the platform stack's outputs
# (stack config key -> platform output), unless the environment names them (STALWART_URL, ...).
# Read on every run, not cached: a platform run earlier in the same batch may have moved them.
PLATFORM_ENDPOINTS: Mapping[str, str] = {
    "stalwart:url": "stalwart_jmap_url",
    "ocis:url": "ocis_url",
}


def _platform_endpoints(stack: auto.Stack, skip: Iterable[str]) -> dict[str, auto.ConfigValue]:
    wanted = {key: output for key, output in PLATFORM_ENDPOINTS.items() if key not in set(skip)}
    if not wanted:
        return {}
    try:
        outputs = stack.workspace.stack_outputs(PLATFORM_STACK)
    except auto.errors.CommandError:
        # No platform stack in this backend yet: the provider names the missing config itself.
        return {}
    return {
        key: auto.ConfigValue(str(outputs[output].value))
        for key, output in wanted.items()
        if output in outputs and isinstance(outputs[output].value, str)
    }
