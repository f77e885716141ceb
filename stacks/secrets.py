"""Secrets a stack program needs, looked up by name; stack config holds them.

``stacks/__main__.py`` builds the lookup from stack config for the real engine (where each
name is read is documented there); the offline plan uses ``offline_secret``, which marks a
stand-in as secret so it is masked in every rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi

# The cluster's kubeconfig (the text of /etc/rancher/k3s/k3s.yaml, server address set).
KUBECONFIG = "kubeconfig"
# The Authentik API token (stack config authentik:token); the platform also hands it to
# Authentik as its bootstrap token.
AUTHENTIK_TOKEN = "authentik-token"  # noqa: S105 (a name)
# Secrets of the platform services, all in the stack config object dezky:platformSecrets.
AUTHENTIK_SECRET_KEY = "authentik-secret-key"  # noqa: S105 (a name)
AUTHENTIK_POSTGRESQL_PASSWORD = "authentik-postgresql-password"  # noqa: S105 (a name)
OBJECT_STORAGE_ACCESS_KEY = "object-storage-access-key"
OBJECT_STORAGE_SECRET_KEY = "object-storage-secret-key"  # noqa: S105 (a name)
COLLABORA_ADMIN_PASSWORD = "collabora-admin-password"  # noqa: S105 (a name)
# The root password of the platform's MongoDB; platform-api's MONGODB_URI is built from it.
MONGODB_ROOT_PASSWORD = "mongodb-root-password"  # noqa: S105 (a name)
# The OpenID Connect applications in Authentik: the operator portal's client secret, and the
# RSA key and certificate (PEM) every application's tokens are signed with (RS256).
OPERATOR_OIDC_CLIENT_SECRET = "operator-oidc-client-secret"  # noqa: S105 (a name)
AUTHENTIK_OIDC_SIGNING_KEY = "authentik-oidc-signing-key"
AUTHENTIK_OIDC_SIGNING_CERTIFICATE = "authentik-oidc-signing-certificate"
# The host: the automation's SSH key for root on the AX41 (Ansible), the host's restic key
# (its public half is in the environment's backup_ssh_keys), and one password per restic
# repository, named restic/<box role>/<source> (stacks.platform_host).
HOST_SSH_PRIVATE_KEY = "host-ssh-private-key"  # noqa: S105 (a name)
RESTIC_SSH_PRIVATE_KEY = "restic-ssh-private-key"  # noqa: S105 (a name)
RESTIC_PASSWORD_PREFIX = "restic/"  # noqa: S105 (a name)
SERVICE_SECRETS = frozenset(
    {
        AUTHENTIK_SECRET_KEY,
        AUTHENTIK_POSTGRESQL_PASSWORD,
        OBJECT_STORAGE_ACCESS_KEY,
        OBJECT_STORAGE_SECRET_KEY,
        COLLABORA_ADMIN_PASSWORD,
        MONGODB_ROOT_PASSWORD,
        OPERATOR_OIDC_CLIENT_SECRET,
        AUTHENTIK_OIDC_SIGNING_KEY,
        AUTHENTIK_OIDC_SIGNING_CERTIFICATE,
        HOST_SSH_PRIVATE_KEY,
        RESTIC_SSH_PRIVATE_KEY,
    }
)


def in_platform_secrets(name: str) -> bool:
    """Whether ``name`` is a key of the stack config object ``dezky:platformSecrets``."""
    return name in SERVICE_SECRETS or name.startswith(RESTIC_PASSWORD_PREFIX)


@dataclass(frozen=True)
class StackSecrets:
    """Secrets a stack program needs, looked up by name (stack config holds them)."""

    lookup: Callable[[str], pulumi.Input[str]]


OFFLINE_PREFIX = "offline:"


def offline_secret(name: str) -> pulumi.Input[str]:
    """Stand-in for a secret when rendering offline (a module function: workers pickle it)."""
    return pulumi.Output.secret(f"{OFFLINE_PREFIX}{name}")


OFFLINE = StackSecrets(offline_secret)
