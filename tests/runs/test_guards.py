"""Guard rails: customer data is never destroyed by accident."""

from __future__ import annotations

import pytest

from automation.errors import DataLossRefusedError
from automation.guards import check_data_loss, check_destroy
from automation.progress import StackEvent
from tenants.model import Tenant

DOMAIN = "pulumi-python:dynamic/stalwart:Domain"
SPACE = "pulumi-python:dynamic/ocis:Space"


def tenant(status: str) -> Tenant:
    admins = [{"email": "a@b.de", "name": "A"}]
    return Tenant.model_validate(
        {"slug": "acme", "name": "A", "plan": "pro", "status": status, "admins": admins}
    )


def step(op: str, type_: str, name: str) -> StackEvent:
    return StackEvent("tenant-acme", "step", op=op, type=type_, name=name)


def test_deleting_a_mail_domain_is_refused_naming_it() -> None:
    steps = [step("same", SPACE, "files-space"), step("delete", DOMAIN, "mail-acme.de-domain")]
    with pytest.raises(DataLossRefusedError) as refused:
        check_data_loss("tenant-acme", steps, tenant("active"), allow_data_loss=True)
    assert str(refused.value) == (
        "tenant-acme: refusing to destroy customer data: mail domain mail-acme.de-domain "
        "(delete); this needs status: offboarding and --allow-data-loss"
    )


def test_replacing_a_file_space_is_refused_even_when_offboarding_without_the_flag() -> None:
    steps = [step("replace", SPACE, "files-space")]
    with pytest.raises(
        DataLossRefusedError, match="file space files-space.*needs --allow-data-loss"
    ):
        check_data_loss("tenant-acme", steps, tenant("offboarding"), allow_data_loss=False)


def test_offboarding_with_the_flag_may_delete() -> None:
    steps = [step("delete", DOMAIN, "mail-acme.de-domain"), step("delete", SPACE, "files-space")]
    check_data_loss("tenant-acme", steps, tenant("offboarding"), allow_data_loss=True)


def test_changes_to_other_resources_pass() -> None:
    steps = [step("delete", "kubernetes:core/v1:Namespace", "k8s-namespace"),
             step("update", DOMAIN, "mail-acme.de-domain")]  # fmt: skip
    check_data_loss("tenant-acme", steps, tenant("active"), allow_data_loss=False)


@pytest.mark.parametrize("status", ["active", "suspended"])
def test_destroy_needs_offboarding(status: str) -> None:
    with pytest.raises(DataLossRefusedError, match=f"status: {status}"):
        check_destroy("tenant-acme", tenant(status), allow_data_loss=True)
    check_destroy("tenant-acme", tenant("offboarding"), allow_data_loss=True)


def test_destroy_needs_the_flag_even_when_offboarding() -> None:
    with pytest.raises(DataLossRefusedError, match="needs --allow-data-loss"):
        check_destroy("tenant-acme", tenant("offboarding"), allow_data_loss=False)


def test_destroy_of_a_stack_without_tenant_file_is_refused() -> None:
    with pytest.raises(DataLossRefusedError, match="no tenant file"):
        check_destroy("tenant-gone", None, allow_data_loss=True)


def test_the_platform_stack_may_be_destroyed_its_data_holders_protect_themselves() -> None:
    check_destroy("platform", None, allow_data_loss=False)
