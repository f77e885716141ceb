"""What a finished run means for platform-api's ``tenants`` document, as fields to set.

platform-api already reads ``provisioningStatus.{authentik,k8s,stalwart,ocis}`` (``ok``,
``skipped``, ``error``, ``pending``), ``provisioningErrors``, ``status`` and the ids below.
"""

from __future__ import annotations

from typing import Any

from automation.records import Operation, RunRecord, RunState
from tenants.model import Tenant

INTEGRATIONS = ("authentik", "k8s", "stalwart", "ocis")
# Which integration a failure belongs to, by the words its message starts with or contains.
_MARKERS = {"stalwart": "stalwart", "ocis": "ocis", "authentik": "authentik", "kubernetes": "k8s"}


def fields_for(run: RunRecord, tenant: Tenant | None) -> dict[str, Any]:
    """``$set`` fields for the tenant's document; empty when the run changes nothing there."""
    if run.operation is Operation.DRIFT and run.state is RunState.SUCCEEDED:
        return {"automationDrift": {"drifted": bool(run.drifted), "resources": list(run.drifted),
                                    "checkedAt": run.finished_at, "runId": run.id}}  # fmt: skip
    if run.operation is not Operation.UP or tenant is None:
        return {}
    skipped = {"stalwart"} if not tenant.mail_domains else set()
    if run.state is RunState.SUCCEEDED:
        status = {i: "skipped" if i in skipped else "ok" for i in INTEGRATIONS}
        fields: dict[str, Any] = {f"provisioningStatus.{i}": s for i, s in status.items()}
        fields |= {"provisioningErrors": [], "status": tenant.status.value}
        outputs = run.outputs
        if tenant.mail_domains:
            fields["stalwartDomain"] = tenant.mail_domains[0]
        for key, output in (
            ("ocisSpaceId", "files_drive_id"),
            ("authentikGroupId", "members_group_id"),
        ):
            if isinstance(outputs.get(output), str):
                fields[key] = outputs[output]
        return fields
    failed = _integration(run.message)
    status = {
        i: "error" if i == failed else ("skipped" if i in skipped else "pending")
        for i in INTEGRATIONS
    }
    error = {"integration": failed or "unknown", "message": run.message, "reason": run.reason,
             "runId": run.id, "at": run.finished_at}  # fmt: skip
    return {
        **{f"provisioningStatus.{i}": s for i, s in status.items()},
        "provisioningErrors": [error],
    }


def _integration(message: str) -> str | None:
    lowered = message.lower()
    for marker, integration in _MARKERS.items():
        if marker in lowered:
            return integration
    return None
