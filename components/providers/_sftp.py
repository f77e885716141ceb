"""The SSH side of talking to a Storage Box over SFTP: what ``providers.restic`` and
``providers.boxkeys`` share.

* ``Box``: where and as whom to log in (``host``, ``port``, ``user``, ``identity_file``,
  ``known_hosts``: the inputs of those names), and the checks of those inputs. The user and
  identity file checks name whose account it is, so the provider passes their wording in
  (``user_check``, ``identity_check``). ``public_key_problems`` checks OpenSSH public key
  lines, such as those ``providers.boxkeys`` writes to an ``authorized_keys`` file.
* ``scratch``: a private temporary directory (removed on exit) with a throw-away
  ``ssh_config`` for the alias ``storagebox``: ``Port`` (23 on a Storage Box), ``IdentityFile``,
  ``BatchMode`` and only the pinned ``known_hosts`` lines (``StrictHostKeyChecking yes``).
  ``environment`` is the child's environment, built from scratch; ``binary`` finds ``ssh``,
  ``sftp`` or ``restic`` on the system's own PATH.
* ``classify_output``: what the output of a failed OpenSSH ``sftp`` batch means. restic's
  output (which relays ssh's) is read by ``_restic_output``, not here.
* Errors: ``connection_error`` (could not connect: retryable; a host key that is not the pinned
  one or a refused SSH key: permanent), ``timed_out`` (retryable) and ``binary``'s "not
  installed" (permanent). Each is an ``ApiError`` of the caller's ``system``, the prefix of
  its messages.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pulumi.runtime.rpc import UNKNOWN

from components.providers._http import ApiError, PermanentApiError, RetryableApiError

SFTP_PORT = 23
"""A Storage Box serves SFTP with restic's helpers on port 23."""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_ALIAS = "storagebox"
"""The ``Host`` of the throw-away ``ssh_config``: what ``ssh``/``sftp`` are told to reach."""

_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-")
_TYPE_RE = re.compile(r"^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9.@-]+)$")

Check = Callable[[object], str | None]
"""Why an input value is wrong, or None if it is right."""

# --- checks --------------------------------------------------------------------------------


def host_problem(value: object) -> str | None:
    ok = isinstance(value, str) and _HOST_RE.match(value) and ".." not in value
    return None if ok else "must be a host name or IP address (the Storage Box's server)"


def port_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return "must be a TCP port (23 on a Storage Box)"
    return None if 0 < value < 65536 else "must be a TCP port (23 on a Storage Box)"


def user_check(problem: str) -> Check:
    """The check of a Storage Box user name; ``problem`` says which account it must be."""

    def check(value: object) -> str | None:
        return None if isinstance(value, str) and _USER_RE.match(value) else problem

    return check


def identity_check(problem: str) -> Check:
    """The check of the private key file's path; ``problem`` says whose key it must be."""

    def check(value: object) -> str | None:
        ok = isinstance(value, str) and value.startswith("/") and "\n" not in value
        return None if ok else problem

    return check


def known_hosts_problem(value: object) -> str | None:
    """Why ``value`` is not a set of pinned known_hosts lines, or None if it is one."""
    if not isinstance(value, str):
        return "must be known_hosts lines: '[host]:23 ssh-ed25519 AAAA...'"
    lines = [line.split() for line in value.splitlines() if line.strip()]
    if not lines or any(
        len(fields) < 3 or not fields[1].startswith(_KEY_TYPES) for fields in lines
    ):
        return "must be known_hosts lines: '[host]:23 ssh-ed25519 AAAA...'"
    return None


def _blob_type(blob: bytes) -> str | None:
    """The key type an OpenSSH public key blob names in its first field."""
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
    if not 0 < size <= len(blob) - 4:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def _key_problem(entry: object) -> str | None:
    """Why ``entry`` is not one OpenSSH public key line; never quotes the entry itself."""
    if not isinstance(entry, str):
        return "is not a string"
    if "PRIVATE KEY" in entry or entry.lstrip().startswith("-----"):
        return "looks like a private key: give the public key (the .pub file)"
    text = entry.strip()
    if not text or any(c in text for c in "\n\r\x00"):
        return "must be exactly one line: one public key per entry"
    fields = text.split(maxsplit=2)
    if len(fields) < 2 or not _TYPE_RE.match(fields[0]):
        return (
            "must be '<type> <base64> [comment]' with type ssh-ed25519, ssh-rsa, "
            "ecdsa-sha2-* or sk-* (no options such as command=...)"
        )
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return f"the {fields[0]} key data is not base64"
    if _blob_type(blob) != fields[0]:
        return f"the key data is not a {fields[0]} key"
    if len(fields) == 3 and not fields[2].isprintable():
        return "the comment must be printable text"
    return None


def public_key_problems(keys: object) -> list[str]:
    """Why ``keys`` is not a non-empty list of distinct OpenSSH public key lines, entry by
    entry (``keys[1]: ...``); empty if it is one. Unknown entries (preview) pass. The messages
    never contain the entries: a pasted private key must not end up in a log."""
    if isinstance(keys, str) or not isinstance(keys, Sequence):
        return ["keys: must be a list of OpenSSH public keys, one a line"]
    if not keys:
        return ["keys: at least one public key is required (delete the resource for none)"]
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(keys):
        if entry == UNKNOWN:
            continue
        problem = _key_problem(entry)
        if problem is None:
            blob = str(entry).split()[1]
            if blob in seen:
                problem = f"is the same key as keys[{seen[blob]}]"
            seen.setdefault(blob, index)
        if problem is not None:
            problems.append(f"keys[{index}]: {problem}")
    return problems


# --- the connection ------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A Storage Box (sub)account to log in to over SSH; nothing secret in it."""

    host: str
    port: int
    user: str
    identity_file: str
    known_hosts: str

    @classmethod
    def of(cls, props: Mapping[str, Any]) -> Box:
        return cls(
            host=str(props["host"]),
            port=int(props["port"]),
            user=str(props["user"]),
            identity_file=str(props["identity_file"]),
            known_hosts=str(props["known_hosts"]),
        )

    def url(self, path: str) -> str:
        """``path`` on the box in restic's URL form: ``sftp://<user>@<host>:<port>/<path>``
        (a relative path is in the home directory; an absolute one gives two slashes)."""
        return f"sftp://{self.user}@{self.host}:{self.port}/{path}"


@dataclass(frozen=True)
class Scratch:
    """A private temporary directory and the throw-away ``ssh_config`` in it."""

    path: Path
    ssh_config: Path


@contextmanager
def scratch(box: Box, *, prefix: str, options: Iterable[str] = ()) -> Iterator[Scratch]:
    """A private temporary directory with an ``ssh_config`` that makes ``HOST_ALIAS`` mean
    ``box`` and trusts only its pinned ``known_hosts`` lines; ``options`` are more
    ``ssh_config`` lines for that host (``"ForwardAgent no"``). Removed on exit."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        path = Path(tmp)
        (path / "known_hosts").write_text(box.known_hosts.strip() + "\n")
        config = path / "ssh_config"
        config.write_text(
            f"Host {HOST_ALIAS}\n"
            f"    HostName {box.host}\n    Port {box.port}\n    User {box.user}\n"
            f"    IdentityFile {box.identity_file}\n    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {path / 'known_hosts'}\n"
            "    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n    ConnectTimeout 15\n"
            + "".join(f"    {option}\n" for option in options)
        )
        yield Scratch(path, config)


def environment(home: Path, **extra: str) -> dict[str, str]:
    """A child's whole environment: the system PATH, ``home`` as HOME, and ``extra``; nothing
    of the engine's (a stray ``SSH_AUTH_SOCK`` or ``RESTIC_*`` cannot change the run)."""
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "LC_ALL": "C.UTF-8", **extra}


def binary(system: str, name: str, package: str) -> str:
    """The executable ``name``: looked up on ``SYSTEM_PATH``, or a path checked as it is."""
    found = shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        raise PermanentApiError(system, f"{name} is not installed (Debian package '{package}')")
    return found


def tail(output: str, count: int = 4) -> str:
    """The last ``count`` non-blank lines of ``output``, stripped, joined by `` | ``."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


# --- what sftp's output means --------------------------------------------------------------

Outcome = Literal["ok", "host-key", "key-refused", "unreachable", "missing", "failed"]

_PATTERNS: tuple[tuple[re.Pattern[str], Outcome], ...] = (
    (re.compile(r"host key verification failed|REMOTE HOST IDENTIFICATION", re.I), "host-key"),
    (re.compile(r"permission denied \(publickey", re.I), "key-refused"),
    (
        re.compile(
            r"connection refused|connection reset|connection timed out|no route to host|"
            r"could not resolve hostname|broken pipe|network is unreachable|"
            r"kex_exchange_identification|connection closed",
            re.I,
        ),
        "unreachable",
    ),
    (re.compile(r"File \".*\" not found|no such file or directory", re.I), "missing"),
)


def classify_output(output: str) -> Outcome:
    """What the output of a failed ``sftp`` batch means (``failed``: none of the known cases).

    A host key other than the pinned one and a refused SSH key come first: ssh ends both with
    "Connection closed", which alone means the box could not be reached."""
    for pattern, outcome in _PATTERNS:
        if pattern.search(output):
            return outcome
    return "failed"


# --- errors --------------------------------------------------------------------------------


def connection_error(
    system: str,
    box: Box,
    where: str,
    outcome: str,
    detail: str,
    *,
    key_remedy: str,
    secrets: Iterable[str] = (),
) -> ApiError | None:
    """The error of an SSH login that failed with ``outcome`` (None: not an SSH failure).

    ``where`` starts the message (what was done to which URL); ``key_remedy`` says where the
    refused key's public half must be."""
    if outcome == "unreachable":
        return RetryableApiError(
            system,
            f"{where}: could not connect to the Storage Box over SFTP (port {box.port}, "
            f"pinned host keys, key {box.identity_file}): {detail}",
            secrets=secrets,
        )
    if outcome == "host-key":
        return PermanentApiError(
            system,
            f"{where}: the server's SSH host key is not the pinned one (known_hosts); "
            f"check the Storage Box's host key before changing the pin: {detail}",
            secrets=secrets,
        )
    if outcome == "key-refused":
        return PermanentApiError(
            system,
            f"{where}: the server refused the SSH key {box.identity_file} for {box.user}; "
            f"{key_remedy}: {detail}",
            secrets=secrets,
        )
    return None


def timed_out(system: str, what: str, timeout: float) -> RetryableApiError:
    """``what`` (a command and its URL) ran longer than ``timeout`` seconds."""
    return RetryableApiError(system, f"{what} timed out after {timeout:g}s")
