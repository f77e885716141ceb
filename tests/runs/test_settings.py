"""Settings from the environment: every provider's credentials reach its stack config."""

from __future__ import annotations

from pathlib import Path

from automation.settings import PROVIDER_CONFIG, Settings
from components.providers import robot
from components.providers._base import config_keys


def test_every_provider_reads_config_the_environment_can_supply() -> None:
    supplied = {key for key, _ in PROVIDER_CONFIG.values()}
    needed = {robot.CONFIG_URL, robot.CONFIG_USER, robot.CONFIG_PASSWORD}
    for system in ("stalwart", "ocis", "authentik"):
        needed |= set(config_keys(system))
    assert needed <= supplied


def test_robot_credentials_become_stack_config_and_the_password_a_secret() -> None:
    env = {"ROBOT_USER": "#ws+abc", "ROBOT_PASSWORD": "pw-123", "PULUMI_CONFIG_PASSPHRASE": "p"}
    settings = Settings.from_env(Path("/repo"), "prod", env)
    user, user_secret = settings.provider_config[robot.CONFIG_USER]
    password, password_secret = settings.provider_config[robot.CONFIG_PASSWORD]
    assert (user.get_secret_value(), user_secret) == ("#ws+abc", False)
    assert (password.get_secret_value(), password_secret) == ("pw-123", True)
    assert "pw-123" not in repr(settings)
