"""What restic's output means: one table for the dynamic provider and for the host's backups.

No Pulumi here, so ``automation.backup`` (and the restore command on the host) can import it.
"""

from __future__ import annotations

import re
from typing import Literal

Outcome = Literal[
    "ok", "missing", "wrong-password", "locked", "host-key", "key-refused", "unreachable",
    "integrity", "failed",
]  # fmt: skip

_PATTERNS: tuple[tuple[re.Pattern[str], Outcome], ...] = (
    (re.compile(r"wrong password|no key found", re.I), "wrong-password"),
    (re.compile(r"repository is already locked|unable to create lock", re.I), "locked"),
    (re.compile(r"host key verification failed|REMOTE HOST IDENTIFICATION", re.I), "host-key"),
    (re.compile(r"permission denied \(publickey", re.I), "key-refused"),
    (
        re.compile(
            r"Is there a repository at the following location|unable to open config file"
            r"|repository does not exist|config file does not exist",
            re.I,
        ),
        "missing",
    ),
    (
        re.compile(
            r"unable to start the sftp session|connection refused|connection reset|"
            r"connection timed out|no route to host|could not resolve hostname|broken pipe|"
            r"connection closed|network is unreachable",
            re.I,
        ),
        "unreachable",
    ),
    (
        re.compile(
            r"ciphertext verification failed|repository contains errors|"
            r"verification failed|invalid data returned|checksum mismatch",
            re.I,
        ),
        "integrity",
    ),
)


def classify_output(output: str) -> Outcome:
    """What restic's output of a failed command means (``failed``: none of the known cases).

    The project's one reading of restic's output: ``automation.backup`` maps the same outcomes
    to its errors. A host key that is not the pinned one and an SSH key the server refuses are
    permanent: retrying cannot fix them, a person must look."""
    for pattern, outcome in _PATTERNS:
        if pattern.search(output):
            return outcome
    return "failed"
