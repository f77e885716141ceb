"""Platform services on k3s: cert-manager with its ClusterIssuer, Authentik, OCIS, Collabora,
MongoDB, Dezky's own web applications (portal, operator portal, platform-api) and the front
door of Stalwart, which runs on the host (``stalwart``); one module per service, shared
Kubernetes helpers in ``_k8s``.

Third-party services are installed from their Helm charts with ``helm.v3.Release`` at the exact
chart versions pinned next to the values they get: values keys change between chart versions,
so a version bump and its values are reviewed together. Release rather than
``helm.v4.Chart`` because:

* a Release is one custom resource whose inputs (chart, version, repository, values) the
  offline plan records under Pulumi's mock runtime; a v4 Chart is a remote component that the
  provider expands by running Helm, so under mocks it has no children and the plan would show
  nothing of what the service is given;
* Helm keeps its release record in the cluster: chart hooks run as their authors intend
  (Authentik's migrations, cert-manager's CRDs and startup check), ``helm history`` and
  ``helm rollback`` stay available to the on-call operator, and ``atomic`` rolls a failed
  upgrade back, so a reconciler that re-applies on every merge never leaves a half-upgrade.

OCIS and MongoDB run from pinned images instead (``ocis``, ``mongodb`` say why).

Secrets never enter Helm values: each service's secrets are a Kubernetes Secret declared here
from Pulumi secrets, and the chart is told the Secret's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.services._k8s import Exposure
from components.services.authentik import Authentik, AuthentikArgs
from components.services.certmanager import AcmeIssuer, CertManager, SelfSignedIssuer
from components.services.collabora import Collabora, CollaboraArgs
from components.services.mongodb import MongoDb, MongoDbArgs, MongoDbClient
from components.services.ocis import Ocis, OcisArgs, S3Backend
from components.services.stalwart import MAIL_TLS_SECRET, StalwartFrontDoor, StalwartFrontDoorArgs
from components.services.webapps import WebAppArgs, WebApps

__all__ = [
    "AcmeIssuer",
    "AuthentikArgs",
    "APPS_NAMESPACE",
    "MAIL_TLS_SECRET",
    "CollaboraArgs",
    "MongoDbArgs",
    "MongoDbClient",
    "OcisArgs",
    "PlatformServices",
    "PlatformServicesArgs",
    "S3Backend",
    "SelfSignedIssuer",
    "StalwartFrontDoorArgs",
    "WebAppArgs",
]

APPS_NAMESPACE = "dezky-system"  # Dezky's own web applications


@dataclass(frozen=True)
class PlatformServicesArgs:
    """Everything the platform runs on k3s."""

    ingress_class: str
    issuer: AcmeIssuer | SelfSignedIssuer
    authentik: AuthentikArgs
    ocis: OcisArgs
    collabora: CollaboraArgs
    mongodb: MongoDbArgs
    apps: Sequence[WebAppArgs]
    apps_namespace: str = APPS_NAMESPACE
    # Stalwart's front door (mail.<base>); None where no host runs Stalwart (dev by default).
    mail: StalwartFrontDoorArgs | None = None


class PlatformServices(pulumi.ComponentResource):
    """cert-manager, Authentik, OCIS, Collabora, MongoDB, the web apps and Stalwart's front door,
    each in its namespace.

    Give it the cluster's provider (``ResourceOptions(providers=[...])``): every object below
    inherits it through its parent.
    """

    cert_manager: CertManager
    authentik: Authentik
    ocis: Ocis
    collabora: Collabora
    mongodb: MongoDb
    apps: WebApps
    mail: StalwartFrontDoor | None

    def __init__(
        self, name: str, args: PlatformServicesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:platform:PlatformServices", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cert_manager = CertManager("cert-manager", args.issuer, opts=child)
        exposure = Exposure(args.ingress_class, self.cert_manager.issuer_name)
        self.authentik = Authentik("authentik", args.authentik, exposure, opts=child)
        self.ocis = Ocis("ocis", args.ocis, exposure, opts=child)
        self.collabora = Collabora("collabora", args.collabora, exposure, opts=child)
        self.mongodb = MongoDb("mongodb", args.mongodb, opts=child)
        self.apps = WebApps("dezky-apps", args.apps_namespace, args.apps, exposure, opts=child)
        self.mail = (
            None
            if args.mail is None
            else StalwartFrontDoor(
                "stalwart", args.mail, exposure, self.cert_manager.issuer, opts=child
            )
        )
        outputs = {"authentik_url": self.authentik.url, "ocis_url": self.ocis.url}
        if self.mail is not None:
            outputs["stalwart_url"] = self.mail.url
        self.register_outputs(outputs)
