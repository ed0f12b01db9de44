"""Error collection and typed reads: a Report names keys and finds their lines; a
Table reads one TOML table's values, reporting each wrong one and reading on."""

from __future__ import annotations

import difflib
import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.locator import BARE_KEY, KeyPath, Locator
from gateway.config.schema import MAX_DURATION

# The arrays of tables; errors name their entries by ``name`` when it is valid.
SECTIONS = ("listener", "trunk", "route")

# Names are for logs, metrics and references: letters, digits and . _ - only.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def quote(text: str) -> str:
    """A name or key in double quotes, escaped so it is one printable ASCII line."""
    return json.dumps(text)


def show(value: object) -> str:
    """A TOML value as an error message shows it: strings in quotes, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean "x"?`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {quote(close[0])}?" if close else ""


class Invalid(Exception):
    """A value is wrong; the message says how. Caught and reported by the caller."""


class Report:
    """Collects errors for one document, naming keys and finding their lines."""

    def __init__(
        self,
        source: str,
        locator: Locator | None,
        data: dict[str, object],
        from_flags: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.source = source
        self.locator = locator
        # Entries the command line wrote: they have no line in the file.
        self.from_flags = from_flags
        self.errors: list[ConfigError] = []
        # Entries are named by their name when it is a valid one.
        self.names: dict[tuple[str, int], str] = {}
        for section in SECTIONS:
            entries = data.get(section)
            if not isinstance(entries, list):
                continue
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    name = entry.get("name")
                    if isinstance(name, str) and NAME_RE.fullmatch(name):
                        self.names[(section, i)] = name

    def key(self, path: KeyPath) -> str:
        """``listener "browsers".origins[2]`` for ``("listener", 0, "origins", 1)``."""
        parts: list[str] = []
        for i, part in enumerate(path):
            if isinstance(part, int):
                name = self.names.get((str(path[0]), part)) if i == 1 else None
                parts[-1] += f" {quote(name)}" if name is not None else f"[{part + 1}]"
            else:
                parts.append(part if BARE_KEY.fullmatch(part) else quote(part))
        return ".".join(parts)

    def line(self, path: KeyPath) -> int | None:
        if self.locator is None or tuple(path[:2]) in self.from_flags:
            return None
        return self.locator.line(path)

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.source, self.line(path), self.key(path), message))

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        # Stable: errors on one line keep the order they were found in.
        errors = sorted(self.errors, key=lambda e: math.inf if e.line is None else e.line)
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)


_E = TypeVar("_E", bound=enum.StrEnum)


class Table:
    """Typed reads from one table. Every problem becomes an error and the read
    returns None (absent or wrong); :meth:`finish` reports keys the schema lacks."""

    def __init__(
        self, report: Report, path: KeyPath, data: dict[str, object], known: Sequence[str]
    ) -> None:
        self.report = report
        self.path = path
        self.data = data
        self.known = known

    def error(self, key: str, message: str) -> None:
        self.report.error((*self.path, key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, required: bool) -> object | None:
        if key in self.data:
            return self.data[key]
        if required:
            self.error(key, "missing required key")
        return None

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {show(value)}")
            return None
        if not value:
            self.error(key, "empty; leave the key out instead" if not required else "empty")
            return None
        return value

    def name(self, key: str = "name", *, required: bool = True) -> str | None:
        value = self.string(key, required=required)
        if value is not None and NAME_RE.fullmatch(value) is None:
            self.error(
                key,
                "expected a name of letters, digits, '.', '_' and '-' (at most 64, "
                f"starting with a letter or digit), got {show(value)}",
            )
            return None
        return value

    def choice(self, key: str, kind: type[_E], *, required: bool = False) -> _E | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            choices = [member.value for member in kind]
            self.error(
                key,
                f"expected one of {', '.join(choices)}, got {show(value)}"
                + suggest(value, choices),
            )
            return None

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"expected a whole number from {low} to {high}, got {show(value)}")
            return None
        return value

    def seconds(self, key: str) -> float | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"expected a number of seconds, got {show(value)}")
            return None
        if not 0 < value <= MAX_DURATION:  # also false for nan
            self.error(key, f"expected seconds in (0, {MAX_DURATION:g}], got {show(value)}")
            return None
        return float(value)

    def strings(self, key: str, convert: Callable[[str], str]) -> list[str]:
        """An array of strings, each passed through ``convert`` (which raises
        :class:`Invalid`); bad items are reported, in order, and left out."""
        value = self.raw(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of strings, got {show(value)}")
            return []
        items: list[str] = []
        for i, item in enumerate(value):
            try:
                if not isinstance(item, str):
                    raise Invalid(f"expected a string, got {show(item)}")
                if not item:
                    raise Invalid("empty")
                items.append(convert(item))
            except Invalid as exc:
                self.report.error((*self.path, key, i), str(exc))
        return items

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                suggestion = suggest(key, self.known)
                self.error(
                    key,
                    "unknown key" + (suggestion or f"; expected one of {', '.join(self.known)}"),
                )


# ---------------------------------------------------------------------------
# Reads shared by several sections
# ---------------------------------------------------------------------------

# A header value Wedge writes as given: printable ASCII, no line breaks.
_HEADER_TEXT_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")


def header_text(table: Table, key: str) -> str | None:
    value = table.string(key)
    if value is not None and _HEADER_TEXT_RE.fullmatch(value) is None:
        table.error(
            key, f"expected printable ASCII text of at most 200 characters, got {show(value)}"
        )
        return None
    return value


def seconds_or_zero(table: Table, key: str) -> float | None:
    """Seconds, where 0 switches the thing off."""
    value = table.raw(key, False)
    if value is not None and not isinstance(value, bool) and value == 0:
        return 0.0
    return table.seconds(key)


def boolean(table: Table, key: str) -> bool | None:
    value = table.raw(key, False)
    if value is not None and not isinstance(value, bool):
        table.error(key, f"expected true or false, got {show(value)}")
        return None
    return value


# An environment variable name (POSIX portable).
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def key_passphrase(table: Table, prefix: str = "") -> tuple[str | None, str | None]:
    """``key_passphrase_env`` / ``key_passphrase_file`` (one of them at most)."""
    env_key, file_key = f"{prefix}key_passphrase_env", f"{prefix}key_passphrase_file"
    env = table.string(env_key)
    if env is not None and _ENV_RE.fullmatch(env) is None:
        table.error(env_key, f"expected an environment variable name, got {show(env)}")
        env = None
    file = table.string(file_key)
    if env is not None and file is not None:
        table.error(file_key, f"give {env_key} or {file_key}, not both")
    return env, file


def inline_tables(table: Table, key: str, known: Sequence[str], example: str) -> list[Table]:
    """``key``: a non-empty array of inline tables like ``example``, each as a
    :class:`Table`; what is not one is reported and left out."""
    value = table.raw(key, False)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        table.error(key, f"expected an array of {example} tables, got {show(value)}")
        return []
    entries: list[Table] = []
    for i, item in enumerate(value):
        path = (*table.path, key, i)
        if isinstance(item, dict):
            entries.append(Table(table.report, path, item, known))
        else:
            table.report.error(path, f"expected {example}, got {show(item)}")
    return entries
