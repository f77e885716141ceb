"""The platform stack program: what every tenant stack builds on.

Declares the k3s provider (from the kubeconfig secret), the platform services on k3s where the
environment has a ``services`` section (cert-manager and its issuer, Authentik, OCIS,
Collabora, MongoDB, Dezky's web apps, and mail.<base> routed to Stalwart on the host where the
host's address is known), the shared Authentik objects (parent group, login
stages, recovery flow, the OpenID Connect applications of OCIS and the operator portal) and,
where the environment has Hetzner parts (prod): the adopted AX41 (reverse DNS and the Robot
firewall; never ordered or cancelled from here) and the backup Storage
Boxes, a BX in fsn1 for the restic repositories and one in hel1 for disaster recovery, each
with a subaccount per backup source. Exports what tenant stacks read (``stacks.refs``).
"""

from __future__ import annotations

import pulumi

from components import identity_platform as idp
from components import services as svc
from components.cluster import cluster_provider
from components.mail_server import MailServer, MailServerArgs
from components.server import DedicatedServer, DedicatedServerArgs
from components.services import mongodb
from components.storage import BackupStorageBox, StorageBoxArgs
from stacks import platform_host, refs
from stacks import secrets as names
from stacks.secrets import StackSecrets
from tenants.environment import (
    OPERATOR_PORTAL_OIDC_ENV,
    Environment,
    Hetzner,
    Services,
    StorageBox,
)

# The Authentik application (OAuth2/OpenID provider) OCIS signs users in with: its web client's
# id, and the pages it sends users back to (ocis web: the callback and silent token renewal).
OCIS_OIDC_APPLICATION = "ocis"
OCIS_OIDC_CLIENT_ID = "ocis-web"
OCIS_REDIRECT_PATHS = ("/", "/oidc-callback.html", "/oidc-silent-redirect.html")
# The operator portal's application. Its client id is the audience (and `azp`) the run API
# requires of access tokens (automation.api.auth.AuthSettings.audience; a test keeps them equal).
OPERATOR_OIDC_APPLICATION = "dezky-operator"
OPERATOR_OIDC_CLIENT_ID = "dezky-operator"
OPERATOR_CALLBACK_PATH = "/auth/oidc/callback"
# platform-api's database, in the platform's MongoDB; the run API and worker use the same one.
PLATFORM_API = "platform-api"


def build(environment: Environment, secrets: StackSecrets) -> None:
    """Declare the platform's resources in the current Pulumi program."""
    kubeconfig = pulumi.Output.secret(secrets.lookup(names.KUBECONFIG))
    depends: list[pulumi.Resource] = []
    if environment.services is not None:
        cluster = cluster_provider("k3s", kubeconfig)
        services = svc.PlatformServices(
            "platform-services",
            services_args(environment, environment.services, secrets),
            opts=pulumi.ResourceOptions(providers=[cluster]),
        )
        # Authentik must answer before its objects can be declared (first run).
        depends.append(services.authentik.release)
    identity = idp.PlatformIdentity(
        "identity",
        identity_args(environment, secrets),
        opts=pulumi.ResourceOptions(depends_on=depends),
    )
    hosts = environment.hostnames
    pulumi.export("environment", environment.name)
    # What the run API's DEZKY_OIDC_ISSUERS names: the operator portal's tokens' issuer.
    pulumi.export("operator_oidc_issuer", idp.issuer_url(hosts.auth, OPERATOR_OIDC_APPLICATION))
    refs.export(
        refs.PlatformRefs(
            tenants_group_id=identity.tenants.id,
            recovery_flow_id=identity.recovery_flow.uuid,
            identification_stage_id=identity.stages.identification,
            mfa_required_stage_id=identity.stages.mfa_required,
            mfa_optional_stage_id=identity.stages.mfa_optional,
            login_stage_id=identity.stages.login,
            deny_policy_id=identity.stages.deny_policy,
            authentik_url=f"https://{hosts.auth}",
            stalwart_jmap_url=f"https://{hosts.mail}",
            ocis_url=f"https://{hosts.files}",
            kubeconfig=kubeconfig,
        )
    )
    hetzner = environment.hetzner
    if hetzner is None:
        return
    server = DedicatedServer(
        "ax41",
        DedicatedServerArgs(
            server_number=hetzner.server_number,
            ipv4=hetzner.ipv4,
            ipv6=hetzner.ipv6,
            hostname=hetzner.hostname,
            admin_networks=list(hetzner.admin_networks),
            mail=True,
            vswitch_id=hetzner.vswitch_id,
        ),
    )
    pulumi.export("server_ip", server.server_ip)
    boxes: dict[str, BackupStorageBox] = {}
    for role, box in hetzner.boxes.items():
        boxes[role] = BackupStorageBox(role, _box_args(box, hetzner, secrets))
        pulumi.export(f"{role}_storage_box_server", boxes[role].box.server)
    repositories = platform_host.backup_repositories(hetzner, boxes, secrets)
    pulumi.export("restic_repositories", repositories.urls)
    host = platform_host.host_configuration(
        environment, hetzner, boxes, secrets, depends_on=[server, repositories]
    )
    pulumi.export("host_configuration", host.run.triggers)
    # Stalwart's listeners, certificate and host name live in its datastore (0.16): declared
    # here over JMAP once the playbook has installed it. Its TLS files are the ones the host's
    # stalwart-tls-sync timer copies from mail/mail-tls.
    MailServer(
        "mail-server",
        MailServerArgs(hostname=environment.hostnames.mail),
        opts=pulumi.ResourceOptions(depends_on=[host]),
    )


def identity_args(environment: Environment, secrets: StackSecrets) -> idp.PlatformIdentityArgs:
    """The platform's OpenID Connect applications and the key that signs their tokens."""
    hosts = environment.hostnames
    return idp.PlatformIdentityArgs(
        signing_key=idp.SigningKey(
            certificate=secrets.lookup(names.AUTHENTIK_OIDC_SIGNING_CERTIFICATE),
            private_key=secrets.lookup(names.AUTHENTIK_OIDC_SIGNING_KEY),
        ),
        applications=[
            idp.OidcApplicationArgs(
                slug=OCIS_OIDC_APPLICATION,
                name="Files",
                client_id=OCIS_OIDC_CLIENT_ID,  # public: ocis web runs in the browser
                redirect_uris=[f"https://{hosts.files}{path}" for path in OCIS_REDIRECT_PATHS],
                launch_url=f"https://{hosts.files}/",
            ),
            idp.OidcApplicationArgs(
                slug=OPERATOR_OIDC_APPLICATION,
                name="Dezky operator portal",
                client_id=OPERATOR_OIDC_CLIENT_ID,
                # Confidential: the portal's server side redeems the code.
                client_secret=secrets.lookup(names.OPERATOR_OIDC_CLIENT_SECRET),
                redirect_uris=[f"https://{hosts.operator}{OPERATOR_CALLBACK_PATH}"],
                launch_url=f"https://{hosts.operator}/",
                operators_only=True,
            ),
        ],
    )


def mongodb_args(secrets: StackSecrets, apps_namespace: str) -> mongodb.MongoDbArgs:
    """The platform's MongoDB; platform-api is the client the cluster admits."""
    return mongodb.MongoDbArgs(
        root_password=secrets.lookup(names.MONGODB_ROOT_PASSWORD),
        clients=[mongodb.MongoDbClient(namespace=apps_namespace, app=PLATFORM_API)],
    )


def services_args(
    environment: Environment, services: Services, secrets: StackSecrets
) -> svc.PlatformServicesArgs:
    """The environment's platform services as component arguments."""
    hosts = environment.hostnames
    tls = services.tls
    storage = services.object_storage
    s3 = (
        None
        if storage is None
        else svc.S3Backend(
            endpoint=storage.endpoint,
            region=storage.region,
            bucket=storage.bucket,
            access_key=secrets.lookup(names.OBJECT_STORAGE_ACCESS_KEY),
            secret_key=secrets.lookup(names.OBJECT_STORAGE_SECRET_KEY),
        )
    )
    apps = services.apps
    database = mongodb_args(secrets, svc.APPS_NAMESPACE)
    operator_env = {
        OPERATOR_PORTAL_OIDC_ENV["issuer"]: idp.issuer_url(hosts.auth, OPERATOR_OIDC_APPLICATION),
        OPERATOR_PORTAL_OIDC_ENV["client_id"]: OPERATOR_OIDC_CLIENT_ID,
    }
    return svc.PlatformServicesArgs(
        ingress_class=environment.ingress_class,
        issuer=_issuer(environment, services),
        authentik=svc.AuthentikArgs(
            host=hosts.auth,
            secret_key=secrets.lookup(names.AUTHENTIK_SECRET_KEY),
            postgresql_password=secrets.lookup(names.AUTHENTIK_POSTGRESQL_PASSWORD),
            bootstrap_token=secrets.lookup(names.AUTHENTIK_TOKEN),
        ),
        ocis=svc.OcisArgs(
            host=hosts.files,
            oidc_issuer=idp.issuer_url(hosts.auth, OCIS_OIDC_APPLICATION),
            oidc_client_id=OCIS_OIDC_CLIENT_ID,
            # Self-signed certificates cannot be verified between OCIS and Authentik.
            insecure=tls.issuer == "self-signed",
            s3=s3,
        ),
        collabora=svc.CollaboraArgs(
            host=hosts.office,
            wopi_host=hosts.files,
            admin_password=secrets.lookup(names.COLLABORA_ADMIN_PASSWORD),
        ),
        mongodb=database,
        mail=mail_front_door(environment, services),
        apps_namespace=svc.APPS_NAMESPACE,
        apps=[
            svc.WebAppArgs(
                name="portal",
                image=apps.portal.image,
                host=hosts.portal,
                port=apps.portal.port,
                replicas=apps.portal.replicas,
                env=apps.portal.env,
            ),
            svc.WebAppArgs(
                name="operator-portal",
                image=apps.operator_portal.image,
                host=hosts.operator,
                port=apps.operator_portal.port,
                replicas=apps.operator_portal.replicas,
                env={**apps.operator_portal.env, **operator_env},
                secret_env={
                    OPERATOR_PORTAL_OIDC_ENV["client_secret"]: secrets.lookup(
                        names.OPERATOR_OIDC_CLIENT_SECRET
                    )
                },
            ),
            svc.WebAppArgs(
                name=PLATFORM_API,
                image=apps.platform_api.image,
                host=hosts.api,
                port=apps.platform_api.port,
                replicas=apps.platform_api.replicas,
                env=apps.platform_api.env,
                secret_env={"MONGODB_URI": mongodb.connection_uri(database)},
            ),
        ],
    )


def mail_front_door(
    environment: Environment, services: Services
) -> svc.StalwartFrontDoorArgs | None:
    """mail.<base> routed to Stalwart on the host, or None where no host address is known.

    The address is ``services.mail_host`` if given, else the Hetzner server's IPv4 (the node's
    own address, which pods reach). Dev has neither by default: nothing serves mail.<base>
    there, though the platform still exports it as the JMAP endpoint.
    """
    hetzner = environment.hetzner
    if services.mail_host is not None:
        address = str(services.mail_host)
    elif hetzner is not None:
        address = hetzner.ipv4
    else:
        return None
    return svc.StalwartFrontDoorArgs(host=environment.hostnames.mail, address=address)


def _issuer(environment: Environment, services: Services) -> svc.AcmeIssuer | svc.SelfSignedIssuer:
    tls = services.tls
    if tls.issuer == "self-signed":
        return svc.SelfSignedIssuer()
    if tls.acme_email is None:  # the environment model refuses this; never guess a contact
        raise ValueError("services.tls.acme_email is required with issuer letsencrypt")
    return svc.AcmeIssuer(email=tls.acme_email, ingress_class=environment.ingress_class)


def _box_args(box: StorageBox, hetzner: Hetzner, secrets: StackSecrets) -> StorageBoxArgs:
    return StorageBoxArgs(
        name=box.name,
        location=box.location,
        box_type=box.type,
        ssh_keys=box.ssh_keys,
        password=secrets.lookup(box.name),
        subaccounts={
            source: secrets.lookup(f"{box.name}/{source}") for source in hetzner.backup_sources
        },
        authorized_keys=hetzner.backup_ssh_keys,
        identity_file=hetzner.automation_identity_file,
        known_hosts=box.known_hosts,
    )
