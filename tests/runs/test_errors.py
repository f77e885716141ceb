"""The one classification table: every failure gets a stable reason, retry policy, exit code."""

from __future__ import annotations

import pytest
from pulumi.automation import errors as auto_errors
from pulumi.automation._cmd import CommandResult

from automation.errors import (
    CancelledError,
    DataLossRefusedError,
    EngineMissingError,
    StalledError,
    classify,
)
from automation.lease import Holder, StackBusyError
from automation.records import Reason
from components.providers._http import PermanentApiError, RetryableApiError
from tenants.problems import Problem, SpecError


def engine_error(stderr: str) -> auto_errors.CommandError:
    return auto_errors.create_command_error(CommandResult(stdout="", stderr=stderr, code=255))


def provider_error(error: Exception) -> auto_errors.CommandError:
    """A dynamic provider's exception as the engine reports it, after pages of progress."""
    progress = "".join(f"    + tenant:resource step-{i} creating\n" for i in range(40))
    return engine_error(f"{progress}error: Exception calling application: {error}\n")


LOCKED = "error: the stack is currently locked by 1 lock(s). Either wait or `pulumi cancel`."
HOLDER = Holder("tenant-acme", "r1", "up", 1, "h", "2026-11-23T03:00:00+00:00", 0.0)

CASES = [
    ("spec", SpecError([Problem("t.yaml", 1, 1, "slug", "bad")]), False,
     Reason.SPEC_INVALID, False, 2),
    ("our lease", StackBusyError(HOLDER), False, Reason.UPDATE_CONFLICT, True, 4),
    ("pulumi lock", engine_error(LOCKED), False, Reason.UPDATE_CONFLICT, True, 4),
    ("preview failed", engine_error("error: program failed: boom"), True,
     Reason.PREVIEW_FAILED, False, 5),
    ("update failed", engine_error("error: update failed"), False, Reason.UPDATE_FAILED, False, 6),
    ("stalwart 503", provider_error(RetryableApiError("stalwart", "503: POST /jmap/", status=503)),
     False, Reason.PROVIDER_API, True, 7),
    ("ocis 400", provider_error(PermanentApiError("ocis", "400 Bad Request: invalidRequest")),
     False, Reason.PROVIDER_API, False, 7),
    ("robot timeout", provider_error(RetryableApiError("robot", "timed out after 10 s")), False,
     Reason.PROVIDER_API, True, 7),
    ("robot in process", provider_error(RetryableApiError(
        "robot", "vSwitch 4321 still 'in process' for server 1; the next run waits again")),
     False, Reason.PROVIDER_API, True, 7),
    ("restic locked", provider_error(RetryableApiError("restic", "locked by another process")),
     False, Reason.PROVIDER_API, True, 7),
    ("restic password", provider_error(PermanentApiError("restic", "wrong password or no key")),
     False, Reason.PROVIDER_API, False, 7),
    ("storagebox refused", provider_error(PermanentApiError("storagebox", "key refused")),
     False, Reason.PROVIDER_API, False, 7),
    ("engine missing", EngineMissingError("no CLI"), False, Reason.ENGINE_MISSING, False, 8),
    ("data loss", DataLossRefusedError("no"), False, Reason.DATA_LOSS_REFUSED, False, 9),
    ("stalled", StalledError("stalled"), False, Reason.STALLED, False, 10),
    ("cancelled", CancelledError("sigterm"), False, Reason.CANCELLED, False, 130),
    ("bug", KeyError("x"), False, Reason.INTERNAL, False, 70),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "previewing", "reason", "retryable", "code"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_classification(
    exc: BaseException, previewing: bool, reason: Reason, retryable: bool, code: int
) -> None:
    failure = classify(exc, previewing)
    assert (failure.reason, failure.retryable, failure.exit_code) == (reason, retryable, code)


def test_provider_message_keeps_the_stable_prefix_and_drops_engine_framing() -> None:
    failure = classify(engine_error("pulumi:...\nerror: stalwart: 409 objectIsLinked\nmore"), False)
    assert failure.message == "stalwart: 409 objectIsLinked"


def test_long_messages_are_cut() -> None:
    failure = classify(KeyError("x" * 5000), False)
    assert len(failure.message) < 700
