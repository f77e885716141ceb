"""Render stack programs offline, under Pulumi's mock runtime, into declared resources.

No engine, no credentials, no network: the real programs run against a mock monitor that
records every registration (type, logical name, parent, inputs, protect). Each stack gets a
fresh event loop and fresh mocks, so stacks rendered in one process never see each other.
Large sets are spread over worker processes to use every core.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pickle
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import pulumi
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import wait_for_rpcs

from stacks import refs
from stacks.program import StackInputs, run

PROJECT = "dezky-infra"
SECRET = "[secret]"  # noqa: S105 (the mask, not a secret)
# Pulumi's marker for a secret value on the wire (rpc._special_sig_key / secret sig).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a marker)
# Outputs that providers compute and programs pass on; the mocks name them after their owner
# ("login-flow.uuid") so the plan shows which resource a reference points at.
COMPUTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "authentik:index/flow:Flow": ("uuid",),
    "authentik:index/application:Application": ("uuid",),
}
# Below this many stacks, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 64


@dataclass(frozen=True)
class DeclaredResource:
    """One resource as a stack program declares it."""

    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)


@dataclass(frozen=True)
class RenderedStack:
    """The resources one stack declares, in registration order."""

    stack: str
    resources: tuple[DeclaredResource, ...]


class _Recorder(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            # Offline, the platform's outputs are named placeholders that read well in a plan.
            outputs = {name: f"${{platform.{name}}}" for name in refs.OUTPUT_NAMES}
            return args.name, {"name": args.name, "outputs": outputs, "secretOutputNames": []}
        computed = {key: f"{args.name}.{key}" for key in COMPUTED_OUTPUTS.get(args.typ, ())}
        # Hetzner ids are numbers; a stable one per name keeps `.id.apply(int)` working.
        resource_id = (
            str(zlib.crc32(args.name.encode()))
            if args.typ.startswith("hcloud:")
            else f"{args.name}-id"
        )
        return resource_id, {**computed, **args.inputs}

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(mocks.MockMonitor):
    """A mock monitor that also keeps what the plain mocks drop: parent and options."""

    def __init__(self) -> None:
        super().__init__(_Recorder())
        self.declared: list[DeclaredResource] = []
        self.names: dict[str, str] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = pulumi.runtime.rpc.deserialize_properties(request.object, keep_unknowns=True)
        if request.name in self.names.values():
            # The mock monitor does not reject duplicates; the engine would (same URN).
            raise ValueError(f"two resources named '{request.name}' in one stack")
        self.names[response.urn] = request.name
        self.declared.append(
            DeclaredResource(
                type=request.type,
                name=request.name,
                parent=self.names.get(request.parent),
                inputs=_public(inputs),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
            )
        )
        return response


def _public(value: Any) -> Any:
    """Inputs as plain data: secrets masked, engine-internal keys (``__provider``) dropped."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return SECRET
        return {k: _public(v) for k, v in sorted(value.items()) if not k.startswith("__")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, pulumi.Output) or type(value).__name__ == "Unknown":
        return "[computed]"
    return value


class _SharedExecutor(ThreadPoolExecutor):
    """A pool that outlives the event loops using it (``loop.close()`` shuts its executor)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None  # closing one render's loop must not stop the pool

    def close(self) -> None:
        super().shutdown(wait=True)


_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
_EXECUTOR: _SharedExecutor | None = None
_THREAD_LOOPS: list[asyncio.AbstractEventLoop] = []


def _executor() -> _SharedExecutor:
    """One pool for every render in this process: starting threads per stack costs ~6 ms."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = _SharedExecutor(8, "render", initializer=_give_thread_a_loop)
        atexit.register(_shutdown)
    return _EXECUTOR


def _give_thread_a_loop() -> None:
    # The mock monitor runs coroutines on the calling thread's event loop.
    _THREAD_LOOPS.append(asyncio.new_event_loop())
    asyncio.set_event_loop(_THREAD_LOOPS[-1])


def _shutdown() -> None:
    if _EXECUTOR is not None:
        _EXECUTOR.close()
    for loop in _THREAD_LOOPS:
        loop.close()


def render(inputs: StackInputs, program: Callable[[StackInputs], None] = run) -> RenderedStack:
    """Run one stack program under mocks and return what it declared."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # before set_mocks: the mocks bind to the current loop
    monitor = _RecordingMonitor()
    mocks.set_mocks(
        monitor.mocks, project=PROJECT, stack=inputs.stack, preview=False, monitor=monitor
    )
    # pulumi 3.257's set_mocks leaves feature_support empty; pulumi-authentik needs this one.
    settings.SETTINGS.feature_support["parameterization"] = True
    # set_mocks keeps the pending-output set; a failed render must not leave tasks in it.
    settings.SETTINGS.outputs.clear()
    loop.set_default_executor(_executor())
    try:
        program(inputs)
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        # pulumi.dynamic.serialize_provider wraps pickle._Pickler._batch_setitems once more on
        # every dynamic resource and never unwraps it; in a process that renders many stacks
        # the wrappers nest until RecursionError (after ~1,000 dynamic resources).
        pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]
    return RenderedStack(inputs.stack, _tree_order(monitor.declared))


def _tree_order(declared: list[DeclaredResource]) -> tuple[DeclaredResource, ...]:
    # Registration order depends on asyncio scheduling; sort into a stable tree order instead.
    # Logical names are unique within a stack (components get distinct names), so a parent
    # is recorded by name.
    parents = {r.name: r.parent for r in declared}

    def path(resource: DeclaredResource) -> tuple[str, ...]:
        chain = [resource.name]
        while parents.get(chain[-1]) is not None and len(chain) < 32:
            chain.append(str(parents[chain[-1]]))
        return tuple(reversed(chain))

    return tuple(sorted(declared, key=lambda r: (path(r), r.type)))


def render_all(inputs: Sequence[StackInputs], workers: int | None = None) -> list[RenderedStack]:
    """Render many stacks, in worker processes when there are enough to pay for them."""
    workers = workers or os.cpu_count() or 1
    if len(inputs) < PARALLEL_THRESHOLD or workers == 1:
        return [render(i) for i in inputs]
    # spawn, not fork: gRPC and asyncio state must not be inherited half-initialised.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        batches = pool.map(_render_batch, _split(list(inputs), workers * 4))
        return [stack for batch in batches for stack in batch]


def _render_batch(batch: list[StackInputs]) -> list[RenderedStack]:
    return [render(i) for i in batch]


def _split(items: list[StackInputs], parts: int) -> Iterator[list[StackInputs]]:
    size = max(1, -(-len(items) // parts))
    for start in range(0, len(items), size):
        yield items[start : start + size]
