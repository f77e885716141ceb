"""The Kubernetes provider a stack declares its k3s resources with, built from a kubeconfig.

Every stack passes this provider explicitly (``ResourceOptions(providers=[...])`` on its
components, which their children inherit), so which cluster a resource lands in is decided by
the kubeconfig the stack was given, never by a default provider reading ``~/.kube/config``.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def cluster_provider(
    name: str, kubeconfig: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
) -> k8s.Provider:
    """A provider for the cluster ``kubeconfig`` (the file's text) points at.

    The kubeconfig holds the cluster's admin credentials: it is always passed on as a secret.
    The settings the SDK would otherwise read from ``PULUMI_K8S_*`` variables are fixed here,
    so a run behaves the same on every machine.
    """
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kubeconfig),
        enable_server_side_apply=True,
        delete_unreachable=False,
        skip_update_unreachable=False,
        enable_config_map_mutable=False,
        enable_secret_mutable=False,
        enable_patch_force=False,
        upsert_existing_objects=False,
        suppress_deprecation_warnings=False,
        suppress_helm_hook_warnings=False,
        opts=opts,
    )
