"""Every failure of a run, classified in one table: a stable reason, whether a retry helps,
and the CLI exit code. CLI, worker and API all use ``classify``.

Dynamic providers run in the engine's provider process, so their errors arrive here only as
engine text; each starts with a stable prefix (``stalwart:``, ``ocis:``, ``robot:``) that the
table matches, the way pulumi.automation matches the CLI's own messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulumi.automation import errors as auto_errors

from automation.lease import StackBusyError
from automation.records import Reason
from components.providers._http import RETRYABLE_MARKER
from tenants.problems import SpecError

MESSAGE_LIMIT = 600
# Dynamic providers' errors arrive as engine text: "<system>: <message>", and a retryable
# one ends with RETRYABLE_MARKER.
_SYSTEMS = r"\b(stalwart|ocis|robot|restic|storagebox): "
_PROVIDER = re.compile(_SYSTEMS)
_PROVIDER_TRANSIENT = re.compile(_SYSTEMS + r"[^\n]*" + re.escape(RETRYABLE_MARKER), re.I)


class EngineMissingError(Exception):
    """The Pulumi CLI is not installed and could not be installed here."""


class DataLossRefusedError(Exception):
    """The change would delete or replace a data-holding resource; refused by the guard rails."""


class CancelledError(Exception):
    """The run was cancelled by a signal; the engine stopped after the steps in flight."""


class StalledError(Exception):
    """The stack failed too often in a row; it waits for its spec to change."""


@dataclass(frozen=True)
class Failure:
    reason: Reason
    retryable: bool
    message: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]


EXIT_CODES: dict[Reason, int] = {
    Reason.SPEC_INVALID: 2,
    Reason.UPDATE_CONFLICT: 4,
    Reason.PREVIEW_FAILED: 5,
    Reason.UPDATE_FAILED: 6,
    Reason.PROVIDER_API: 7,
    Reason.ENGINE_MISSING: 8,
    Reason.DATA_LOSS_REFUSED: 9,
    Reason.STALLED: 10,
    Reason.CANCELLED: 130,
    Reason.INTERNAL: 70,
}


def classify(exc: BaseException, previewing: bool) -> Failure:
    """The reason and retry policy of a failure; ``previewing`` tells preview from update."""
    full = str(exc)
    text = _cut(full)
    match exc:
        case SpecError():
            return Failure(Reason.SPEC_INVALID, False, text)
        case StackBusyError() | auto_errors.ConcurrentUpdateError():
            return Failure(Reason.UPDATE_CONFLICT, True, text)
        case EngineMissingError():
            return Failure(Reason.ENGINE_MISSING, False, text)
        case DataLossRefusedError():
            return Failure(Reason.DATA_LOSS_REFUSED, False, text)
        case CancelledError():
            return Failure(Reason.CANCELLED, False, text)
        case StalledError():
            return Failure(Reason.STALLED, False, text)
        case auto_errors.CommandError() if _PROVIDER.search(full):
            return Failure(
                Reason.PROVIDER_API, bool(_PROVIDER_TRANSIENT.search(full)), _provider_line(full)
            )
        case auto_errors.CommandError():
            reason = Reason.PREVIEW_FAILED if previewing else Reason.UPDATE_FAILED
            return Failure(reason, False, _engine_error(text))
    return Failure(Reason.INTERNAL, False, f"{type(exc).__name__}: {text}")


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " …"


def _provider_line(text: str) -> str:
    match = _PROVIDER.search(text)
    assert match is not None  # noqa: S101 (guarded by the case above)
    return text[match.start() :].splitlines()[0]


def _engine_error(text: str) -> str:
    # The CLI's stderr holds the useful line ("error: ..."); code/stdout framing is noise.
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("error:")]
    return lines[-1] if lines else text
