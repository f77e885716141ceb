"""Guard rails: refuse changes that would lose customer data, before the engine applies them.

``up`` previews first and passes the announced steps here. A delete or replacement of a
data-holding resource (mail domain, file space, Storage Box, backup repository) is refused
unless the tenant is offboarding and the operator said ``--allow-data-loss``.
"""

from __future__ import annotations

from collections.abc import Sequence

from automation.datanotes import DATA_KINDS
from automation.errors import DataLossRefusedError
from automation.progress import StackEvent
from stacks.naming import tenant_slug
from tenants.model import Status, Tenant

DESTRUCTIVE_OPS = frozenset({"delete", "replace", "create-replacement", "delete-replaced"})


def check_data_loss(
    stack: str, steps: Sequence[StackEvent], tenant: Tenant | None, allow_data_loss: bool
) -> None:
    """Raise DataLossRefusedError naming every data-holding resource the steps would destroy."""
    doomed = [
        f"{DATA_KINDS[s.type].noun} {s.name} ({s.op})"
        for s in steps
        if s.op in DESTRUCTIVE_OPS and s.type in DATA_KINDS and DATA_KINDS[s.type].guarded
    ]
    if not doomed:
        return
    offboarding = tenant is not None and tenant.status is Status.OFFBOARDING
    if offboarding and allow_data_loss:
        return
    needs = "--allow-data-loss" if offboarding else "status: offboarding and --allow-data-loss"
    raise DataLossRefusedError(
        f"{stack}: refusing to destroy customer data: {', '.join(dict.fromkeys(doomed))}; "
        f"this needs {needs}"
    )


def check_destroy(stack: str, tenant: Tenant | None, allow_data_loss: bool) -> None:
    """A tenant stack may only be destroyed once its tenant is offboarding.

    The platform stack is not a tenant's: its data holders (Storage Boxes) are protected and
    retained on delete, so the engine itself refuses to remove them.
    """
    if tenant_slug(stack) is None:
        return
    if tenant is None or tenant.status is not Status.OFFBOARDING:
        status = "no tenant file" if tenant is None else f"status: {tenant.status.value}"
        raise DataLossRefusedError(
            f"{stack}: destroy needs the tenant to be offboarding ({status}); set "
            "`status: offboarding` in its file and merge first"
        )
    if not allow_data_loss:
        raise DataLossRefusedError(
            f"{stack}: destroying a tenant deletes its mail domains (and its file space if "
            "purge_files_on_destroy is set); this needs --allow-data-loss"
        )
