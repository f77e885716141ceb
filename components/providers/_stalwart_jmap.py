"""Stalwart >= 0.16 management over JMAP: the registry objects ``x:Domain`` and ``x:DkimSignature``,
and the server's ``x:Certificate``, ``x:NetworkListener`` and ``x:SystemSettings`` (a singleton).

``GET /jmap/session`` names the ``apiUrl``; every call is a ``POST`` there with the capabilities
``urn:ietf:params:jmap:core`` and ``urn:stalwart:jmap``. Errors arrive on three levels, all
mapped into the ``_http`` tree: HTTP status (401, 429, 5xx, problem+json 400), method-level
``["error", {"type": ...}]`` and per-object SetErrors in ``notCreated/notUpdated/notDestroyed``
(``StalwartSetError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.providers._http import PermanentApiError, TokenClient

SYSTEM = "stalwart"
USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]
_CALL_ID = "c0"
# The id of a singleton object such as x:SystemSettings (stalwartlabs/cli src/commands/apply.rs,
# resolve_update_id).
SINGLETON = "singleton"
# RFC 8620 method errors after which the same call may later succeed.
_RETRYABLE_METHOD_ERRORS = frozenset({"serverUnavailable", "serverPartialFail", "rateLimit"})
_SET_FAILURES = (("notCreated", "create"), ("notUpdated", "update"), ("notDestroyed", "destroy"))


class StalwartSetError(PermanentApiError):
    """Stalwart refused one object of an ``x:<Object>/set`` (a JMAP SetError)."""

    def __init__(
        self,
        message: str,
        *,
        set_type: str,
        properties: tuple[str, ...] = (),
        linked: tuple[tuple[str, str], ...] = (),
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(SYSTEM, message, secrets=secrets)
        self.set_type = set_type
        self.properties = properties
        self.linked = linked
        """``(object type, id)`` of the objects that still reference the target."""


class StalwartClient(TokenClient):
    """Typed client for the JMAP management API of Stalwart >= 0.16."""

    system = SYSTEM
    _api_url: str | None = None

    # --- domains -------------------------------------------------------------------------

    def find_domain(self, name: str) -> str | None:
        """Id of the domain called ``name`` (a unique index in Stalwart), or None."""
        ids = self.query("Domain", {"name": name})
        return ids[0] if ids else None

    def get_domain(self, domain_id: str, properties: Sequence[str]) -> dict[str, Any] | None:
        found = self.get("Domain", [domain_id], properties)
        return found[0] if found else None

    def create_domain(self, props: Mapping[str, Any]) -> str:
        result = self.set("Domain", create={"d0": dict(props)})
        created = self._http.as_object((result.get("created") or {}).get("d0"), "created domain")
        if not created.get("id"):
            raise self._http.permanent("x:Domain/set: created domain has no id")
        return str(created["id"])

    def update_domain(self, domain_id: str, patch: Mapping[str, Any]) -> None:
        self.set("Domain", update={domain_id: dict(patch)})

    def destroy_domain(self, domain_id: str) -> bool:
        """Destroy a domain; False when it was already gone (a retried delete)."""
        return self._destroy("Domain", [domain_id])

    # --- DKIM signatures -----------------------------------------------------------------

    def dkim_ids(self, domain_id: str) -> list[str]:
        return self.query("DkimSignature", {"domainId": domain_id})

    def get_dkim(self, ids: Sequence[str], properties: Sequence[str]) -> list[dict[str, Any]]:
        return self.get("DkimSignature", ids, properties) if ids else []

    def destroy_dkim(self, ids: Sequence[str]) -> None:
        if ids:
            self._destroy("DkimSignature", ids)

    # --- server settings: certificates, listeners, the SystemSettings singleton ---------

    def certificate_ids(self) -> list[str]:
        """Ids of all ``x:Certificate`` objects (there is no name to look one up by)."""
        return self.query("Certificate", {})

    def find_listener(self, name: str) -> str | None:
        """Id of the ``x:NetworkListener`` called ``name`` (its unique identifier), or None."""
        ids = self.query("NetworkListener", {"name": name})
        return ids[0] if ids else None

    def get_one(self, obj: str, object_id: str, properties: Sequence[str]) -> dict[str, Any] | None:
        """One registry object, or None when it does not exist (``notFound``)."""
        found = [
            item for item in self.get(obj, [object_id], properties) if item.get("id") == object_id
        ]
        return found[0] if found else None

    def create_object(self, obj: str, props: Mapping[str, Any]) -> str:
        """Create one ``x:<obj>`` and return its server-assigned id."""
        result = self.set(obj, create={"c0": dict(props)})
        created = self._http.as_object((result.get("created") or {}).get("c0"), f"created {obj}")
        if not created.get("id"):
            raise self._http.permanent(f"x:{obj}/set: created {obj} has no id")
        return str(created["id"])

    def update_object(self, obj: str, object_id: str, patch: Mapping[str, Any]) -> None:
        """Patch one object (only the given properties change); a no-op for an empty patch."""
        if patch:
            self.set(obj, update={object_id: dict(patch)})

    def destroy_object(self, obj: str, object_id: str) -> bool:
        """Destroy one object; False when it was already gone (a retried delete)."""
        return self._destroy(obj, [object_id])

    def get_singleton(self, obj: str, properties: Sequence[str]) -> dict[str, Any]:
        """The singleton ``x:<obj>`` (id ``singleton``; singletons have no ``/query``)."""
        found = self.get_one(obj, SINGLETON, properties)
        if found is None:
            raise self._http.permanent(f"x:{obj}/get: the singleton is missing")
        return found

    def update_singleton(self, obj: str, patch: Mapping[str, Any]) -> None:
        self.update_object(obj, SINGLETON, patch)

    # --- generic registry methods --------------------------------------------------------

    def query(self, obj: str, filter_: Mapping[str, Any]) -> list[str]:
        result = self.call(f"x:{obj}/query", {"filter": dict(filter_)})
        return [str(i) for i in result.get("ids") or []]

    def get(self, obj: str, ids: Sequence[str], properties: Sequence[str]) -> list[dict[str, Any]]:
        args = {"ids": list(ids), "properties": list(properties)}
        result = self.call(f"x:{obj}/get", args)
        return [self._http.as_object(item, f"x:{obj}/get item") for item in result.get("list", [])]

    def set(
        self,
        obj: str,
        *,
        create: Mapping[str, Any] | None = None,
        update: Mapping[str, Any] | None = None,
        destroy: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One ``x:<obj>/set``; raises ``StalwartSetError`` for the first refused object."""
        args: dict[str, Any] = {}
        if create:
            args["create"] = dict(create)
        if update:
            args["update"] = dict(update)
        if destroy:
            args["destroy"] = list(destroy)
        method = f"x:{obj}/set"
        result = self.call(method, args)
        for key, verb in _SET_FAILURES:
            failures = result.get(key) or {}
            if failures:
                target, error = next(iter(failures.items()))
                raise self._set_error(method, verb, str(target), error, len(failures))
        return result

    def call(self, method: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Send one method call and return its arguments, or raise the mapped error."""
        body = {"using": USING, "methodCalls": [[method, dict(args), _CALL_ID]]}
        # Reads repeat safely; a resent /set could act twice (e.g. create a duplicate).
        response = self._http.request(
            "POST", self._endpoint(), json=body, idempotent=not method.endswith("/set")
        )
        data = self._http.json_object(response, method)
        for entry in data.get("methodResponses") or []:
            if isinstance(entry, list) and len(entry) == 3 and entry[2] == _CALL_ID:
                name, result = entry[0], self._http.as_object(entry[1], method)
                if name == "error":
                    raise self._method_error(method, result)
                if name != method:
                    raise self._http.permanent(f"{method}: unexpected response {name!r}")
                return result
        raise self._http.permanent(f"{method}: no response for the method call")

    def session(self) -> dict[str, Any]:
        data = self._http.json_object(self._http.request("GET", "/jmap/session"), "session")
        if "urn:stalwart:jmap" not in (data.get("capabilities") or {}):
            raise self._http.permanent(
                "the JMAP session has no urn:stalwart:jmap capability; Stalwart >= 0.16 is needed"
            )
        if not isinstance(data.get("apiUrl"), str):
            raise self._http.permanent("the JMAP session has no apiUrl")
        self._api_url = data["apiUrl"]
        return data

    def _endpoint(self) -> str:
        if self._api_url is None:
            return str(self.session()["apiUrl"])
        return self._api_url

    def _destroy(self, obj: str, ids: Sequence[str]) -> bool:
        try:
            self.set(obj, destroy=ids)
        except StalwartSetError as err:
            if err.set_type != "notFound":
                raise
            return False
        return True

    def _method_error(self, method: str, error: dict[str, Any]) -> Exception:
        kind = str(error.get("type", "unknown"))
        text = f"{method} failed: {kind}"
        if error.get("description"):
            text += f": {error['description']}"
        if kind in _RETRYABLE_METHOD_ERRORS:
            return self._http.retryable(text)
        return self._http.permanent(text)

    def _set_error(
        self, method: str, verb: str, target: str, error: Any, count: int
    ) -> StalwartSetError:
        error = self._http.as_object(error, f"{method} SetError")
        kind = str(error.get("type", "unknown"))
        properties = tuple(str(p) for p in error.get("properties") or ())
        linked = tuple(
            (str(item.get("object")), str(item.get("id")))
            for item in error.get("linkedObjects") or ()
            if isinstance(item, dict)
        )
        text = f"{method} could not {verb} {target!r}: {kind}"
        if error.get("description"):
            text += f": {error['description']}"
        if properties:
            text += f" (properties: {', '.join(properties)})"
        if linked:
            text += f" (linked: {', '.join(f'{o} {i}' for o, i in linked)})"
        for item in error.get("validationErrors") or ():
            text += f" [{item}]"
        if count > 1:
            text += f" (and {count - 1} more)"
        return StalwartSetError(
            text, set_type=kind, properties=properties, linked=linked, secrets=self._http.secrets
        )
