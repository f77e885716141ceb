"""Run a stack program under Pulumi's mocks and keep what the renderer drops on purpose.

``automation.render`` masks secrets and drops the provider a resource is registered with;
these tests need both: which provider each resource goes through, and whether a value was
sent as a secret.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import wait_for_rpcs

from automation import render
from stacks import refs

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (Pulumi's marker)


@dataclass(frozen=True)
class Secret:
    """A value that reached the engine marked secret."""

    value: Any


def unwrap(value: Any) -> Any:
    """Inputs as plain data, each secret as ``Secret(value)``."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return Secret(unwrap(value.get("value")))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None


@dataclass
class Recording(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    # Stack outputs: name -> (value, exported as a secret).
    exports: dict[str, tuple[Any, bool]] = field(default_factory=dict)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = {name: f"${{platform.{name}}}" for name in refs.OUTPUT_NAMES}
            return args.name, {"name": args.name, "outputs": outputs, "secretOutputNames": []}
        self.resources.append(
            Registered(args.typ, args.name, unwrap(dict(args.inputs)), args.provider or None)
        )
        outputs = dict(args.inputs)
        for key in render.COMPUTED_OUTPUTS.get(args.typ, ()):
            outputs[key] = f"{args.name}.{key}"
        # What Hetzner assigns: the box's server and user names, each subaccount's user.
        if args.typ == "hcloud:index/storageBox:StorageBox":
            outputs |= {"server": f"{args.name}.your-storagebox.de", "username": args.name}
        if args.typ == "hcloud:index/storageBoxSubaccount:StorageBoxSubaccount":
            outputs["username"] = f"{args.name}-user"
        # Hetzner ids are numbers (programs do `.id.apply(int)`), as in automation.render.
        numeric = args.typ.startswith("hcloud:")
        return (str(zlib.crc32(args.name.encode())) if numeric else f"{args.name}-id"), outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, prefix: str) -> list[Registered]:
        return [r for r in self.resources if r.type.startswith(prefix)]

    def named(self, name: str) -> Registered:
        (found,) = [r for r in self.resources if r.name == name]
        return found


@contextmanager
def _loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def run(program: Callable[[], None], stack: str) -> Recording:
    """Run ``program`` as stack ``stack``; return its registrations and resolved outputs."""
    recording = Recording()
    exported: dict[str, Any] = {}
    export = pulumi.export
    with _loop() as loop:
        mocks.set_mocks(recording, project=refs.PROJECT, stack=stack, preview=False)
        settings.SETTINGS.feature_support["parameterization"] = True  # pulumi-authentik
        settings.SETTINGS.outputs.clear()
        # The renderer's pool: its threads own event loops the mock monitor runs on.
        loop.set_default_executor(render._executor())
        pulumi.export = exported.__setitem__
        try:
            program()
        finally:
            pulumi.export = export
        loop.run_until_complete(wait_for_rpcs())
        for name, value in exported.items():
            recording.exports[name] = loop.run_until_complete(_resolve(value))
    return recording


async def _resolve(value: Any) -> tuple[Any, bool]:
    if not isinstance(value, pulumi.Output):
        return value, False
    output = pulumi.Output.from_input(value)
    return await output.future(), bool(await output.is_secret())


def provider_of(resource: Registered) -> tuple[str, str] | None:
    """(type, logical name) of the provider a resource was registered with (``urn::id``)."""
    if resource.provider is None:
        return None
    urn = resource.provider.rsplit("::", 1)[0]
    qualified_type, name = urn.rsplit("::", 2)[-2:]
    return qualified_type.rsplit("$", 1)[-1], name
