"""Shared Authentik objects every tenant uses: the parent group, stages and the recovery flow.

Declared once in the platform stack; tenant stacks reference them by id (stack outputs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_authentik as authentik

RECOVERY_FLOW_SLUG = "dezky-recovery"
PASSWORD_BACKENDS = ["authentik.core.auth.InbuiltBackend", "authentik.core.auth.TokenBackend"]


@dataclass(frozen=True)
class SharedStages:
    """Stage ids a tenant's authentication flow binds."""

    identification: pulumi.Output[str]
    mfa_required: pulumi.Output[str]
    mfa_optional: pulumi.Output[str]
    login: pulumi.Output[str]
    deny_policy: pulumi.Output[str]


class PlatformIdentity(pulumi.ComponentResource):
    """Parent group ``tenants``, login stages, and the Dezky recovery flow."""

    tenants: authentik.Group
    recovery_flow: authentik.Flow
    stages: SharedStages

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
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
        self.register_outputs(
            {"tenants_id": self.tenants.id, "recovery_flow": self.recovery_flow.uuid}
        )

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
