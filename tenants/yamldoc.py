"""Read one YAML file into plain data plus the line and column of every key and value.

libyaml (PyYAML's C binding) composes the node tree, which carries marks; walking the tree
ourselves gives the positions that pydantic errors are mapped back to, and lets us refuse what
a safe loader would quietly accept: duplicate keys, anchors and aliases (alias bombs), deep
nesting. PyYAML rather than ruamel.yaml because libyaml is an order of magnitude faster and
validation has a throughput target (docs/decisions/0002-yaml-with-libyaml.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tenants.problems import FILE_FIELD, Problem, SpecError

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 16

Loc = tuple[str | int, ...]
Position = tuple[int, int]


@dataclass(frozen=True)
class YamlDoc:
    """Plain data of a YAML file, with 1-based (line, col) of each value and mapping key."""

    path: str
    data: Any
    values: dict[Loc, Position] = field(default_factory=dict)
    keys: dict[Loc, Position] = field(default_factory=dict)

    def position(self, loc: Loc, *, of_key: bool = False) -> Position:
        """Where ``loc`` is written; falls back to the nearest enclosing value that exists."""
        if of_key and loc in self.keys:
            return self.keys[loc]
        while loc not in self.values and loc:
            loc = loc[:-1]
        return self.values.get(loc, (1, 1))


def _problem(path: str, mark: Any, message: str) -> SpecError:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return SpecError([Problem(path, line, col, FILE_FIELD, message)])


def read_text(path: Path, shown: str) -> str:
    """File contents as text, refusing files that are too large or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(
                [Problem(shown, 1, 1, FILE_FIELD, f"file is {size:,} bytes; the limit is 1 MiB")]
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([Problem(shown, 1, 1, FILE_FIELD, f"cannot read: {exc.strerror}")]) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise SpecError([Problem(shown, line, col, FILE_FIELD, message)]) from exc


def parse(text: str, shown: str) -> YamlDoc:
    """Parse YAML text into a YamlDoc, or raise SpecError naming the line and column."""
    if "&" in text or "*" in text:
        _refuse_aliases(text, shown)
    loader = yaml.CSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _problem(shown, None, "file is empty; a tenant file needs slug, name, plan")
        doc = YamlDoc(shown, None)
        data = _Walker(doc, loader).value(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax: {exc.problem or exc.context}"
        if "\t" in _line_at(text, mark):
            message += " (tabs are not allowed in YAML indentation; use spaces)"
        raise _problem(shown, mark, message) from exc
    except yaml.YAMLError as exc:
        raise _problem(shown, None, f"YAML: {exc}") from exc
    except RecursionError as exc:
        raise _problem(shown, None, "nested too deeply") from exc
    finally:
        loader.dispose()
    return YamlDoc(shown, data, doc.values, doc.keys)


def _line_at(text: str, mark: yaml.Mark | None) -> str:
    lines = text.splitlines()
    return lines[mark.line] if mark is not None and mark.line < len(lines) else ""


def _refuse_aliases(text: str, shown: str) -> None:
    # Aliases are checked on the event stream, before any node is built, so an alias bomb
    # costs one linear scan and nothing is ever expanded.
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _problem(
                    shown, event.start_mark, "anchors and aliases (& and *) are not allowed"
                )
    except yaml.MarkedYAMLError:
        return  # the syntax error is reported by the full parse, with its position


class _Walker:
    def __init__(self, doc: YamlDoc, loader: yaml.CSafeLoader) -> None:
        self.doc = doc
        self.loader = loader

    def value(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _problem(self.doc.path, node.start_mark, "nested too deeply")
        self.doc.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node)

    def mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                raise _problem(self.doc.path, key_node.start_mark, "keys must be plain names")
            if key in result:
                raise _problem(self.doc.path, key_node.start_mark, f"duplicate key '{key}'")
            self.doc.keys[(*loc, key)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            result[key] = self.value(value_node, (*loc, key), depth + 1)
        return result


_STR_TAG = "tag:yaml.org,2002:str"
