"""Checks that hold for the whole suite, before any test runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.server import core_build

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "sdp", "media", "certs")


def _stale_extensions() -> list[str]:
    """Sources edited since setup.py compiled them in place: their old C extension
    would still be the module imported, and the edit would go untested."""
    stale = []
    extensions = (so for package in PACKAGES for so in (ROOT / package).glob("**/*.so"))
    for extension in extensions:
        stem = extension.name.split(".", 1)[0]
        for source in (extension.with_name(stem + ".py"), extension.with_name(stem + ".c")):
            if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
                stale.append(str(source.relative_to(ROOT)))
    return sorted(stale)


def pytest_configure(config: pytest.Config) -> None:
    stale = _stale_extensions()
    if stale:
        raise pytest.UsageError(
            f"{', '.join(stale)} changed after it was compiled: ./scripts/test recompiles "
            "(or `.venv/bin/python setup.py -q build_ext --inplace`; deleting the .so "
            "files tests the pure Python instead)"
        )


def pytest_report_header() -> str:
    return f"wedge build: {core_build()}"
