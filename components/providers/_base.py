"""What the dynamic providers over a vendor HTTP API share (``TokenProvider``), and the
checks and resource options that mean the same for all of them.

The provider object is pickled into state, so it holds no credentials: the engine hands the
stack config to ``configure`` in the provider process, where ``<system>:url`` and
``<system>:token`` are read, and ``__getstate__`` keeps them out of any later pickle. A
provider unpickled from state keeps the attributes it was pickled with (``http_timeout``,
``retry``, ``_credentials`` and its own): renaming one breaks the resources already deployed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from components.providers._http import PermanentApiError, RetryPolicy, TokenClient

ClientT = TypeVar("ClientT", bound=TokenClient)

_SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def config_keys(system: str) -> tuple[str, str]:
    """The stack config keys of the API's url and (secret) token: ``<system>:url|token``."""
    return f"{system}:url", f"{system}:token"


def slug_problem(value: object) -> str | None:
    """Why ``value`` is not a tenant slug, or None if it is one."""
    if not isinstance(value, str) or not _SLUG_RE.match(value) or "--" in value:
        return "must be a tenant slug: 2-32 of a-z, 0-9 and single '-', starting with a letter"
    return None


def known_problems(
    news: dict[str, Any], checks: Iterable[tuple[str, Callable[[object], str | None]]]
) -> list[tuple[str, str]]:
    """``(key, reason)`` of each input that fails its check; unknown values (preview) pass."""
    return [
        (key, reason)
        for key, problem in checks
        if news.get(key) != UNKNOWN and (reason := problem(news.get(key)))
    ]


def guarded_child(parent: pulumi.Resource, protect: bool) -> pulumi.ResourceOptions:
    """Options of a child resource that holds customer data.

    ``protect`` stops a delete in the engine; ``retain_on_delete`` keeps the data if someone
    lifts protect and removes the resource anyway. Offboarding is an explicit step.
    """
    if protect:
        return pulumi.ResourceOptions(parent=parent, protect=True, retain_on_delete=True)
    return pulumi.ResourceOptions(parent=parent)


@dataclass(frozen=True)
class _Credentials:
    url: str
    token: str = field(repr=False)


class DeclaredProvider(dynamic.ResourceProvider):
    """``check`` and ``diff`` from declarations: ``inputs`` (the input properties), ``checks``
    (input -> problem function) and ``replace_on`` / ``stables``."""

    inputs: ClassVar[tuple[str, ...]]
    checks: ClassVar[tuple[tuple[str, Callable[[Any], str | None]], ...]] = ()
    replace_on: ClassVar[frozenset[str]] = frozenset()
    stables: ClassVar[tuple[str, ...]] = ()

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        problems = known_problems(news, self.checks)
        return dynamic.CheckResult(dict(news), [dynamic.CheckFailure(k, r) for k, r in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # Always an explicit answer: with None the engine diffs __provider too.
        changed = self._changed(olds, news)
        return dynamic.DiffResult(
            changes=bool(changed),
            replaces=[k for k in changed if k in self.replace_on],
            stables=list(self.stables),
            delete_before_replace=False,
        )

    def _changed(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        """The inputs that differ from the last state, or are not known yet (preview)."""
        return [k for k in self.inputs if news.get(k) == UNKNOWN or olds.get(k) != news.get(k)]


class TokenProvider(DeclaredProvider, Generic[ClientT]):
    """A provider that reaches its vendor with a ``TokenClient``; credentials only from config.

    Subclasses set ``system`` (config namespace and error prefix), ``product`` (its name in
    messages), ``client_type`` (the ``TokenClient`` subclass ``_client()`` opens) and the
    declarations of ``DeclaredProvider``; ``read`` reports the ``inputs`` back from live state.
    """

    system: ClassVar[str]
    product: ClassVar[str]
    client_type: type[ClientT]

    def __init__(self, *, http_timeout: float = 10.0, retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.http_timeout = http_timeout
        self.retry = retry or RetryPolicy()
        self._credentials: _Credentials | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_credentials"] = None  # never pickle a token into state
        return state

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        url_key, token_key = config_keys(self.system)
        url, token = req.config.get(url_key), req.config.get(token_key)
        if isinstance(url, str) and url and isinstance(token, str) and token:
            self._credentials = _Credentials(url, token)

    def _client(self) -> ClientT:
        if self._credentials is None:
            url_key, token_key = config_keys(self.system)
            raise PermanentApiError(
                self.system,
                f"stack config {url_key} and {token_key} (secret) are required "
                f"for the {self.product} provider",
            )
        url, token = self._credentials.url, self._credentials.token
        return self.client_type(url, token, timeout=self.http_timeout, retry=self.retry)

    def _read_result(self, id_: str, outs: dict[str, Any] | None) -> dynamic.ReadResult:
        """The live ``outs`` with the inputs among them; None: gone out of band."""
        if outs is None:
            return dynamic.ReadResult("", {})  # the engine drops the resource
        return dynamic.ReadResult(id_, outs, {k: outs[k] for k in self.inputs})
