"""A small reader for BIND zone text, enough for the records mail servers ask you to publish.

Handles what Stalwart's ``BindSerializer`` writes (``<name> IN <TYPE> <data>``, TXT over 255
bytes split into quoted chunks inside parentheses) and the usual variations: TTLs, class before
or after the TTL, comments, omitted owner (same as the previous line), ``$`` directives (skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

_CLASSES = frozenset({"IN", "CH", "HS"})


@dataclass(frozen=True)
class ZoneRecord:
    """One resource record; TXT ``value`` is its character-strings joined, unquoted."""

    name: str
    type: str
    value: str
    ttl: int | None = None


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


def parse_zone(text: str) -> list[ZoneRecord]:
    """Parse zone text into records; lines that are not records are skipped."""
    records: list[ZoneRecord] = []
    owner = ""
    for indented, tokens in _logical_lines(text):
        if not tokens or tokens[0].text.startswith("$"):
            continue
        if not indented:
            owner, tokens = tokens[0].text, tokens[1:]
        record = _record(owner, tokens)
        if record is not None:
            records.append(record)
    return records


def _record(owner: str, tokens: list[_Token]) -> ZoneRecord | None:
    ttl: int | None = None
    while tokens and not tokens[0].quoted:
        head = tokens[0].text
        if head.upper() in _CLASSES:
            tokens = tokens[1:]
        elif head.isdigit() and ttl is None:
            ttl, tokens = int(head), tokens[1:]
        else:
            break
    if not owner or len(tokens) < 2:
        return None
    rtype, data = tokens[0].text.upper(), tokens[1:]
    sep = "" if rtype == "TXT" else " "  # TXT character-strings concatenate
    return ZoneRecord(name=owner, type=rtype, value=sep.join(t.text for t in data), ttl=ttl)


def _logical_lines(text: str) -> list[tuple[bool, list[_Token]]]:
    """Split into records: parentheses join lines, ``;`` starts a comment outside quotes."""
    lines: list[tuple[bool, list[_Token]]] = []
    tokens: list[_Token] = []
    depth, indented, start = 0, False, True
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if start:
            indented, start = ch in " \t", False
        if ch == "\n":
            if depth == 0:
                lines.append((indented, tokens))
                tokens, start = [], True
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "()":
            depth = max(0, depth + (1 if ch == "(" else -1))
            i += 1
        elif ch == '"':
            i = _quoted(text, i + 1, tokens)
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                j += 1
            tokens.append(_Token(text[i:j], quoted=False))
            i = j
    lines.append((indented, tokens))
    return lines


def _quoted(text: str, i: int, tokens: list[_Token]) -> int:
    """Read a quoted string starting after its opening quote; return the index after it."""
    out: list[str] = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    tokens.append(_Token("".join(out), quoted=True))
    return i + 1
