"""What a bad policy raises: every problem with its file, line and key."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """A policy file is wrong, and where.

    ``str()`` is ``source:line: key: message``; the line is left out when it is
    not known, the key when the problem is the file as a whole, and a TOML syntax
    error adds the column (``source:line:column: message``).
    """

    def __init__(
        self,
        source: str,
        line: int | None,
        key: str,
        message: str,
        column: int | None = None,
    ) -> None:
        self.source = source
        """The file, as given to :func:`load_config` or :func:`parse_config`."""
        self.line = line
        """1-based line of the key (or of its table's header when the key is
        missing), None when it cannot be known."""
        self.column = column
        """1-based column; only TOML syntax errors have one."""
        self.key = key
        """Dotted key such as ``listener "browsers".bind``; ``""`` for the file."""
        self.message = message
        """What is wrong, e.g. ``expected host:port, got '0.0.0.0'``."""
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __str__(self) -> str:
        return self._format()

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every problem found: just this one."""
        return (self,)


class ConfigErrors(ConfigError):
    """Several problems found in one pass. The attributes are the first error's;
    :attr:`errors` holds them all, sorted by line; ``str()`` is one per line."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self._errors = tuple(errors)
        first = self._errors[0]
        super().__init__(first.source, first.line, first.key, first.message, first.column)

    def _format(self) -> str:
        return "\n".join(str(error) for error in self._errors)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors
