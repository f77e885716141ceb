"""Settings for runs: read once at the entry point (CLI, worker), then passed down.

Defaults make a fresh checkout work offline: state in the repository's ignored ``.state/``
folder (``file://``), the passphrase secrets provider. Production points ``DEZKY_BACKEND_URL``
at Hetzner Object Storage (``s3://bucket?endpoint=fsn1.your-objectstorage.com&s3ForcePathStyle=true``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

# The CLI the engine runs: ≥ 3.256.0 for S3-compatible state on Hetzner (checksum fix), and the
# same minor as the SDK (docs/decisions/0001-pulumi-3.257.md).
PULUMI_CLI_VERSION = "3.257.0"
# Provider plugins, pinned to the SDK versions in requirements.lock.
PLUGINS: Mapping[str, str] = {
    "kubernetes": "v4.34.2",
    "hcloud": "v1.43.3",
    "command": "v1.2.1",
    "terraform-provider": "v0.12.0",  # hosts pulumi-authentik 2025.8.1 (parameterized)
}


# Stack config keys the providers read, and the environment variables that supply them.
# Secrets go into stack config encrypted (passphrase provider) and never into logs or records.
PROVIDER_CONFIG: Mapping[str, tuple[str, bool]] = {
    "AUTHENTIK_URL": ("authentik:url", False),
    "AUTHENTIK_TOKEN": ("authentik:token", True),
    "STALWART_URL": ("stalwart:url", False),
    "STALWART_TOKEN": ("stalwart:token", True),
    "OCIS_URL": ("ocis:url", False),
    "OCIS_TOKEN": ("ocis:token", True),
    "HCLOUD_TOKEN": ("hcloud:token", True),
    # A Robot *webservice* user (not the account login); ROBOT_URL only for tests.
    "ROBOT_USER": ("robot:user", False),
    "ROBOT_PASSWORD": ("robot:password", True),
    "ROBOT_URL": ("robot:url", False),
}


@dataclass(frozen=True)
class Settings:
    """Where state, work directories and the engine live, and the secrets to reach them."""

    repo: Path
    environment: str = "prod"
    backend_url: str = ""
    passphrase: SecretStr = field(default_factory=lambda: SecretStr(""))
    pulumi_cli_version: str = PULUMI_CLI_VERSION
    # Seconds a run's lease lives without a heartbeat; the holder renews every third of it.
    lease_seconds: float = 60.0
    # Install the pinned CLI on first use when it is missing (off for air-gapped machines).
    install_cli: bool = True
    # Provider plugins installed at their pinned versions before the first operation.
    plugins: Mapping[str, str] = field(default_factory=lambda: dict(PLUGINS))
    # The virtual environment the engine runs the program in; default: the repo's .venv.
    venv: Path | None = None
    # Stack config from the environment: key -> (value, secret).
    provider_config: Mapping[str, tuple[SecretStr, bool]] = field(default_factory=dict)
    kubeconfig: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.repo / ".state"

    @property
    def effective_backend_url(self) -> str:
        return self.backend_url or f"file://{self.state_dir / 'backend'}"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    @property
    def locks_dir(self) -> Path:
        return self.state_dir / "locks"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def pulumi_home(self) -> Path:
        return self.state_dir / "pulumi-home"

    @property
    def cli_root(self) -> Path:
        return self.state_dir / "pulumi-cli" / self.pulumi_cli_version

    @classmethod
    def from_env(
        cls, repo: Path, environment: str, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from ``DEZKY_*`` and ``PULUMI_CONFIG_PASSPHRASE`` variables."""
        env = os.environ if env is None else env
        passphrase = env.get("PULUMI_CONFIG_PASSPHRASE", "")
        passphrase_file = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if not passphrase and passphrase_file:
            passphrase = Path(passphrase_file).read_text(encoding="utf-8").strip()
        return cls(
            repo=repo,
            environment=environment,
            backend_url=env.get("DEZKY_BACKEND_URL", ""),
            passphrase=SecretStr(passphrase),
            lease_seconds=float(env.get("DEZKY_LEASE_SECONDS", "60")),
            provider_config={
                key: (SecretStr(env[var]), secret)
                for var, (key, secret) in PROVIDER_CONFIG.items()
                if env.get(var)
            },
            kubeconfig=Path(env["KUBECONFIG"]) if env.get("KUBECONFIG") else None,
            install_cli=env.get("DEZKY_INSTALL_PULUMI", "1") != "0",
        )
