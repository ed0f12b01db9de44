"""Where each key of a policy file is written (tomllib reports no value positions)."""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left

# A key path inside the parsed document: table keys, and 0-based indices into
# arrays of tables. ("listener", 1, "bind") is `bind` in the second [[listener]].
KeyPath = tuple[str | int, ...]

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class Locator:
    """Where each key of a valid TOML document is written.

    One pass over the text: table headers (``[a.b]``, ``[[a]]``) set the current
    table, counting array-of-tables entries per parent so ``[[listener]]`` number
    two is ``("listener", 1)``; every ``key =`` line records ``table + key``.
    Values are skipped (strings of all four kinds, arrays over several lines,
    inline tables) so nothing inside them is taken for a key; the items of an
    array value get their own lines (``key + (i,)``). Keys inside inline tables
    get none: :meth:`line` then answers with the closest enclosing path that has one.

    Only ever run on text :func:`tomllib.loads` accepted, so it need not diagnose.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        self._lines: dict[KeyPath, int] = {}
        self._scan()

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest ancestor that has one."""
        while path:
            line = self._lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None

    def _line_at(self, pos: int) -> int:
        return bisect_left(self._newlines, pos) + 1

    def _scan(self) -> None:
        text = self._text
        end = len(text)
        pos = 0
        table: KeyPath = ()
        counts: dict[KeyPath, int] = {}
        while pos < end:
            char = text[pos]
            if char in " \t\r\n":
                pos += 1
            elif char == "#":
                pos = self._end_of_line(pos)
            elif char == "[":
                line = self._line_at(pos)
                array = text.startswith("[[", pos)
                keys, pos = self._key(pos + (2 if array else 1))
                pos += 2 if array else 1  # the closing ] or ]]
                table = self._resolve(keys, array, counts)
                for depth in range(1, len(table) + 1):  # [[a]] also places a
                    self._lines.setdefault(table[:depth], line)
            else:
                line = self._line_at(pos)
                keys, pos = self._key(pos)
                pos += 1  # the =
                for depth in range(1, len(keys) + 1):
                    self._lines.setdefault(table + tuple(keys[:depth]), line)
                pos = self._skip_value(pos, table + tuple(keys))

    @staticmethod
    def _resolve(keys: list[str], array: bool, counts: dict[KeyPath, int]) -> KeyPath:
        """The path a header names; ``[[a]]`` entries get their index."""
        path: KeyPath = ()
        for i, key in enumerate(keys):
            path += (key,)
            if i == len(keys) - 1 and array:
                counts[path] = counts.get(path, 0) + 1
                path += (counts[path] - 1,)
            elif path in counts:  # [a.b] after [[a]] is inside a's last entry
                path += (counts[path] - 1,)
        return path

    def _key(self, pos: int) -> tuple[list[str], int]:
        """A dotted key starting at or after ``pos``; returns the parts and the
        position of the character after it (``=``, ``]``) with blanks skipped."""
        text = self._text
        keys: list[str] = []
        while True:
            pos = self._skip_blanks(pos)
            if text[pos] in "\"'":
                after = self._skip_string(pos)
                # tomllib accepted this key, so it can decode it for us exactly.
                keys.append(str(tomllib.loads("k = " + text[pos:after])["k"]))
                pos = after
            else:
                match = BARE_KEY.match(text, pos)
                assert match is not None  # tomllib accepted the document
                keys.append(match.group())
                pos = match.end()
            pos = self._skip_blanks(pos)
            if text[pos] != ".":
                return keys, pos
            pos += 1

    def _skip_blanks(self, pos: int) -> int:
        text = self._text
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        return pos

    def _end_of_line(self, pos: int) -> int:
        newline = self._text.find("\n", pos)
        return len(self._text) if newline < 0 else newline + 1

    def _skip_value(self, pos: int, path: KeyPath) -> int:
        """Past the value of ``path`` starting at ``pos`` and the rest of its last
        line. The items of an array value get their own lines (``path + (i,)``)."""
        text = self._text
        depth = 0  # open [ and { brackets
        array = False  # the value is an array
        items = -1  # index of its last item seen
        expect_item = False  # at depth 1 in that array, after [ or ,
        while pos < len(text):
            char = text[pos]
            if expect_item and char not in " \t\r\n#]":
                items += 1
                self._lines.setdefault((*path, items), self._line_at(pos))
                expect_item = False
            if char == '"' or char == "'":
                pos = self._skip_string(pos)
                continue
            if char == "#":
                pos = self._end_of_line(pos)
                if depth == 0:
                    return pos
                continue
            if char == "[" or char == "{":
                if depth == 0 and char == "[":
                    array = expect_item = True
                depth += 1
            elif char == "]" or char == "}":
                depth -= 1
            elif char == "," and depth == 1 and array:
                expect_item = True
            elif char == "\n" and depth == 0:
                return pos + 1
            pos += 1
        return pos

    def _skip_string(self, pos: int) -> int:
        """Past the string (basic, literal, or either multi-line kind) at ``pos``."""
        text = self._text
        quote = text[pos]
        if text.startswith(quote * 3, pos):
            pos += 3
            while True:
                if quote == '"' and text[pos] == "\\":
                    pos += 2
                elif text.startswith(quote * 3, pos):
                    # Up to two quotes may end the content: """a""""" is 'a""'.
                    run = 3
                    while run < 5 and pos + run < len(text) and text[pos + run] == quote:
                        run += 1
                    return pos + run
                else:
                    pos += 1
        pos += 1
        while text[pos] != quote:
            pos += 2 if quote == '"' and text[pos] == "\\" else 1
        return pos + 1
