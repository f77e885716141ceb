"""Shared Authentik objects: what every tenant uses (the parent group, stages and the recovery
flow) and the platform's own OpenID Connect applications (files, the operator portal).

Declared once in the platform stack; tenant stacks reference them by id (stack outputs).

Everything an application needs is declared here rather than looked up: its authorization
flow, the scope mappings and the signing key. Data sources (invokes) would ask an Authentik
that the same stack is still installing on its first run, and show nothing in the offline plan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_authentik as authentik

RECOVERY_FLOW_SLUG = "dezky-recovery"
AUTHORIZATION_FLOW_SLUG = "dezky-provider-authorization"
INVALIDATION_FLOW_SLUG = "dezky-provider-invalidation"
OPERATORS_GROUP = "platform-operators"
PASSWORD_BACKENDS = ["authentik.core.auth.InbuiltBackend", "authentik.core.auth.TokenBackend"]
# The claims of the scopes the applications request (Authentik's defaults, minus the group
# list, which neither application reads).
SCOPES = {
    "openid": "return {}\n",
    "email": 'return {"email": request.user.email}\n',
    "profile": (
        "return {\n"
        '    "name": request.user.name,\n'
        '    "given_name": request.user.name,\n'
        '    "preferred_username": request.user.username,\n'
        '    "nickname": request.user.username,\n'
        "}\n"
    ),
}


def issuer_url(auth_host: str, slug: str) -> str:
    """The ``iss`` of the tokens of application ``slug`` (Authentik's per-provider issuer)."""
    return f"https://{auth_host}/application/o/{slug}/"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key and its certificate (PEM) that Authentik signs the applications' tokens with.

    RS256: clients verify tokens against the issuer's JWKS. Without a signing key Authentik
    signs with HS256 and the client secret, which the run API refuses.
    """

    certificate: pulumi.Input[str]
    private_key: pulumi.Input[str]


@dataclass(frozen=True)
class OidcApplicationArgs:
    """One OAuth2/OpenID Connect application.

    ``client_secret`` None makes a public client (a browser app, PKCE); otherwise confidential.
    ``operators_only`` binds the application to the platform operators' group: nobody else can
    sign in to it or obtain its tokens.
    """

    slug: str
    name: str
    client_id: str
    redirect_uris: Sequence[str]
    launch_url: str
    client_secret: pulumi.Input[str] | None = None
    operators_only: bool = False


@dataclass(frozen=True)
class PlatformIdentityArgs:
    """Inputs of ``PlatformIdentity``: the token signing key and the platform's applications."""

    signing_key: SigningKey
    applications: Sequence[OidcApplicationArgs]


@dataclass(frozen=True)
class _Shared:
    """What every application of the platform uses."""

    authorization_flow: pulumi.Output[str]
    invalidation_flow: pulumi.Output[str]
    signing_key: pulumi.Output[str]
    scopes: list[pulumi.Output[str]]
    operators: pulumi.Output[str]


@dataclass(frozen=True)
class SharedStages:
    """Stage ids a tenant's authentication flow binds."""

    identification: pulumi.Output[str]
    mfa_required: pulumi.Output[str]
    mfa_optional: pulumi.Output[str]
    login: pulumi.Output[str]
    deny_policy: pulumi.Output[str]


class PlatformIdentity(pulumi.ComponentResource):
    """Parent group ``tenants``, login stages, the Dezky recovery flow, the operators' group and
    the platform's OpenID Connect applications."""

    tenants: authentik.Group
    operators: authentik.Group
    recovery_flow: authentik.Flow
    stages: SharedStages
    applications: dict[str, OidcApplication]

    def __init__(
        self, name: str, args: PlatformIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dezky:identity:PlatformIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.tenants = authentik.Group(
            f"{name}-tenants",
            name="tenants",
            attributes=json.dumps({"managedBy": "dezky-infra"}),
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        password = authentik.StagePassword(
            f"{name}-password", name="dezky-password", backends=PASSWORD_BACKENDS, opts=child
        )
        identification = authentik.StageIdentification(
            f"{name}-identification",
            name="dezky-identification",
            user_fields=["email", "username"],
            password_stage=password.id,
            case_insensitive_matching=True,
            pretend_user_exists=True,
            opts=child,
        )
        totp = authentik.StageAuthenticatorTotp(
            f"{name}-totp-setup", name="dezky-totp-setup", digits="6", opts=child
        )
        mfa_classes = ["totp", "webauthn", "static"]
        mfa_required = authentik.StageAuthenticatorValidate(
            f"{name}-mfa-required",
            name="dezky-mfa-required",
            device_classes=mfa_classes,
            not_configured_action="configure",
            configuration_stages=[totp.id],
            opts=child,
        )
        # Optional MFA still asks for the second factor of users who set one up.
        mfa_optional = authentik.StageAuthenticatorValidate(
            f"{name}-mfa-optional",
            name="dezky-mfa-optional",
            device_classes=mfa_classes,
            not_configured_action="skip",
            opts=child,
        )
        login = authentik.StageUserLogin(f"{name}-login", name="dezky-login", opts=child)
        deny = authentik.PolicyExpression(
            f"{name}-deny",
            name="dezky-deny-suspended",
            expression='ak_message("This organisation is suspended.")\nreturn False\n',
            opts=child,
        )
        self.recovery_flow = self._recovery_flow(name, child)
        self.stages = SharedStages(
            identification.id, mfa_required.id, mfa_optional.id, login.id, deny.id
        )
        # Membership is given by people (Authentik's admin interface), never by this stack.
        self.operators = authentik.Group(
            f"{name}-operators",
            name=OPERATORS_GROUP,
            attributes=json.dumps({"managedBy": "dezky-infra"}),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["users"]),
        )
        shared = self._application_parts(name, args.signing_key, child)
        self.applications = {
            app.slug: OidcApplication(f"{name}-{app.slug}", app, shared, opts=child)
            for app in args.applications
        }
        self.register_outputs(
            {"tenants_id": self.tenants.id, "recovery_flow": self.recovery_flow.uuid}
        )

    def _application_parts(
        self, name: str, key: SigningKey, child: pulumi.ResourceOptions
    ) -> _Shared:
        signing = authentik.CertificateKeyPair(
            f"{name}-signing-key",
            name="dezky-oidc-signing",
            certificate_data=pulumi.Output.secret(key.certificate),
            key_data=pulumi.Output.secret(key.private_key),
            opts=child,
        )
        # No stages: a signed-in user is sent straight back to the application (implicit
        # consent; the applications are the platform's own), as Authentik's default flows do.
        authorization = authentik.Flow(
            f"{name}-authorization",
            slug=AUTHORIZATION_FLOW_SLUG,
            name="Dezky application authorization",
            title="Continue to the application",
            designation="authorization",
            authentication="require_authenticated",
            opts=child,
        )
        invalidation = authentik.Flow(
            f"{name}-invalidation",
            slug=INVALIDATION_FLOW_SLUG,
            name="Dezky application sign-out",
            title="You are signed out of the application",
            designation="invalidation",
            opts=child,
        )
        scopes = [
            authentik.PropertyMappingProviderScope(
                f"{name}-scope-{scope}",
                name=f"dezky scope {scope}",
                scope_name=scope,
                expression=expression,
                opts=child,
            ).id
            for scope, expression in SCOPES.items()
        ]
        return _Shared(authorization.uuid, invalidation.uuid, signing.id, scopes, self.operators.id)

    def _recovery_flow(self, name: str, child: pulumi.ResourceOptions) -> authentik.Flow:
        # Identification, then a password prompt, then the password write. Authentication
        # "none": a recovery link is all a new user needs to set a first password.
        flow = authentik.Flow(
            f"{name}-recovery",
            slug=RECOVERY_FLOW_SLUG,
            name="Dezky recovery",
            title="Set your password",
            designation="recovery",
            authentication="none",
            opts=child,
        )
        identify = authentik.StageIdentification(
            f"{name}-recovery-identification",
            name="dezky-recovery-identification",
            user_fields=["email", "username"],
            case_insensitive_matching=True,
            pretend_user_exists=True,
            opts=child,
        )
        fields = [
            authentik.StagePromptField(
                f"{name}-recovery-{key.replace('_', '-')}",
                name=f"dezky-recovery-{key}",
                field_key=key,
                label=label,
                type="password",
                required=True,
                order=order,
                opts=child,
            )
            for order, (key, label) in enumerate(
                [("password", "New password"), ("password_repeat", "Repeat the password")]
            )
        ]
        prompt = authentik.StagePrompt(
            f"{name}-recovery-prompt",
            name="dezky-recovery-prompt",
            fields=[f.id for f in fields],
            opts=child,
        )
        write = authentik.StageUserWrite(
            f"{name}-recovery-write",
            name="dezky-recovery-write",
            user_creation_mode="never_create",
            opts=child,
        )
        for order, stage in ((10, identify), (20, prompt), (30, write)):
            authentik.FlowStageBinding(
                f"{name}-recovery-binding-{order}",
                target=flow.uuid,
                stage=stage.id,
                order=order,
                opts=child,
            )
        return flow


class OidcApplication(pulumi.ComponentResource):
    """An Authentik application with its OAuth2/OpenID provider (per-provider issuer, RS256)."""

    provider: authentik.ProviderOauth2
    application: authentik.Application

    def __init__(
        self,
        name: str,
        args: OidcApplicationArgs,
        shared: _Shared,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dezky:identity:OidcApplication", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        confidential = args.client_secret is not None
        self.provider = authentik.ProviderOauth2(
            f"{name}-provider",
            name=args.name,
            client_id=args.client_id,
            client_type="confidential" if confidential else "public",
            client_secret=None
            if args.client_secret is None
            else pulumi.Output.secret(args.client_secret),
            authorization_flow=shared.authorization_flow,
            invalidation_flow=shared.invalidation_flow,
            allowed_redirect_uris=[
                {"matching_mode": "strict", "url": uri} for uri in args.redirect_uris
            ],
            property_mappings=shared.scopes,
            signing_key=shared.signing_key,
            issuer_mode="per_provider",  # iss = https://<auth>/application/o/<slug>/
            opts=child,
        )
        self.application = authentik.Application(
            f"{name}-application",
            slug=args.slug,
            name=args.name,
            protocol_provider=cast(pulumi.Output[float], self.provider.id.apply(_primary_key)),
            meta_launch_url=args.launch_url,
            policy_engine_mode="any",
            opts=child,
        )
        if args.operators_only:
            # An application with a binding admits only whom a binding lets through: Authentik
            # checks the application's bindings before it authorizes a user (and on the
            # client-credentials grant), so others get no token of it.
            authentik.PolicyBinding(
                f"{name}-operators",
                target=self.application.uuid,
                group=shared.operators,
                order=0,
                opts=child,
            )
        self.register_outputs({"client_id": args.client_id, "slug": args.slug})


def _primary_key(provider_id: str) -> float | str:
    """The provider's id as the number ``Application.protocol_provider`` takes.

    Pulumi ids are strings; Authentik's are integers. A non-numeric id (the offline plan's
    stand-in, named after the provider) is passed on as it is, so the plan shows the reference.
    """
    return float(provider_id) if provider_id.isdigit() else provider_id
