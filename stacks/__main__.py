"""Entry point when the Pulumi engine runs this project (``main: stacks/`` in Pulumi.yaml).

The only place in stacks/ that reads config and files: the stack name picks the program,
``dezky:environment`` picks ``environments/<name>.yaml``, a tenant stack reads its tenant file.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from stacks import naming
from stacks.platform import PlatformSecrets
from stacks.program import StackInputs, run
from tenants.environment import ENVIRONMENTS_DIR, load_environment
from tenants.loader import load_tenant

REPO = Path(__file__).resolve().parent.parent


def _inputs() -> StackInputs:
    stack = pulumi.get_stack()
    config = pulumi.Config("dezky")
    env_name = config.require("environment")
    environment = load_environment(REPO / ENVIRONMENTS_DIR / f"{env_name}.yaml")
    slug = naming.tenant_slug(stack)
    if slug is None:
        # Secret values for Storage Boxes and subaccounts, keyed "<box>" and "<box>/<source>".
        passwords = config.require_secret_object("storageBoxPasswords")
        secrets = PlatformSecrets(lambda name: passwords.apply(lambda all_: str(all_[name])))
        return StackInputs.for_platform(environment, secrets)
    spec = load_tenant(REPO / "tenants" / f"{slug}.yaml").tenant
    return StackInputs.for_tenant(spec, environment)


run(_inputs())
