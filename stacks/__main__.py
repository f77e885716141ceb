"""Entry point when the Pulumi engine runs this project (``main: stacks/`` in Pulumi.yaml).

The only place in stacks/ that reads config and files: the stack name picks the program,
``dezky:environment`` picks ``environments/<name>.yaml``, a tenant stack reads its tenant file.

Secrets, by the name a program looks them up with (``stacks.secrets``):

* ``kubeconfig``: stack config ``kubernetes:kubeconfig`` (secret), which the automation writes
  from the file ``KUBECONFIG`` names: on the server, /etc/rancher/k3s/k3s.yaml with its
  public address; in dev the local k3s or kind kubeconfig;
* ``authentik-token``: stack config ``authentik:token`` (secret, from ``AUTHENTIK_TOKEN``);
* the platform services' secrets (Authentik, Collabora, object storage, ``mongodb-root-password``,
  the OpenID Connect ``operator-oidc-client-secret`` and signing key pair
  ``authentik-oidc-signing-key``/``authentik-oidc-signing-certificate``, PEM) and the host's
  (SSH keys, restic repository passwords ``restic/<box role>/<source>``): keys of the secret
  object ``dezky:platformSecrets`` (``stacks.secrets.in_platform_secrets``);
* Storage Box passwords: keys ``<box>`` and ``<box>/<source>`` of ``dezky:storageBoxPasswords``.

Each is read only when the program looks it up, so dev needs no Storage Box passwords.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from stacks import naming
from stacks import secrets as names
from stacks.program import StackInputs, run
from stacks.secrets import StackSecrets
from tenants.environment import ENVIRONMENTS_DIR, load_environment
from tenants.loader import load_tenant

REPO = Path(__file__).resolve().parent.parent


def _from_object(config: pulumi.Config, key: str, name: str) -> pulumi.Output[str]:
    def pick(values: dict[str, object]) -> str:
        if name not in values:
            raise KeyError(f"stack config dezky:{key} has no key {name!r}")
        return str(values[name])

    return config.require_secret_object(key).apply(pick)


def _secrets(config: pulumi.Config) -> StackSecrets:
    def lookup(name: str) -> pulumi.Input[str]:
        if name == names.KUBECONFIG:
            return pulumi.Config("kubernetes").require_secret("kubeconfig")
        if name == names.AUTHENTIK_TOKEN:
            return pulumi.Config("authentik").require_secret("token")
        if names.in_platform_secrets(name):
            return _from_object(config, "platformSecrets", name)
        return _from_object(config, "storageBoxPasswords", name)

    return StackSecrets(lookup)


def _inputs() -> StackInputs:
    stack = pulumi.get_stack()
    config = pulumi.Config("dezky")
    env_name = config.require("environment")
    environment = load_environment(REPO / ENVIRONMENTS_DIR / f"{env_name}.yaml")
    slug = naming.tenant_slug(stack)
    if slug is None:
        return StackInputs.for_platform(environment, _secrets(config))
    spec = load_tenant(REPO / "tenants" / f"{slug}.yaml").tenant
    return StackInputs.for_tenant(spec, environment, _secrets(config))


run(_inputs())
