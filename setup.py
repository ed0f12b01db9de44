"""Wedge's build: the signalling core compiled to C by mypyc, and the media relay's
fast path in C, where a compiler is.

The packages in ``COMPILED`` are plain, strictly typed Python. mypyc turns each
module into a C extension that runs the same code with native attribute access
and calls; ``bench/proxy.py`` measures what it buys. ``media/_forward.c`` forwards
the packets of established media streams socket to socket (``media/relay.py`` says
when); ``bench/relay.py`` measures it. Where there is no C compiler (or with
``WEDGE_PURE=1``) Wedge installs as the pure Python it is written in and runs the
same, more slowly: ``wedge run`` logs which build it runs.

Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "gateway/sip",
    "gateway/transaction",
    "gateway/proxy",
    "gateway/policy.py",
    "gateway/memo.py",
    "gateway/workers/dispatch.py",
]
"""The per-message path: the SIP parser, transactions, the proxy core, the routing
policy and the frames SIP workers pass each other."""

# The build environment has none of the runtime dependencies: what the compiled modules
# import from them stays a Python object of type Any, the modules they import are
# read for types but not checked (mypy --strict checks them where the dependencies
# are installed), and an ignore written for a missing module is then unused.
MYPY_FLAGS = ["--ignore-missing-imports", "--follow-imports=silent", "--no-warn-unused-ignores"]


def _note(text: str) -> None:
    print(f"wedge build: {text}", file=sys.stderr)


FORWARDER = Extension("media._forward", ["media/_forward.c"], extra_compile_args=["-O2"])
"""The relay's fast path, plain C: it needs Linux's recvmmsg."""


def _compiled_modules() -> list[Any]:
    if os.environ.get("WEDGE_PURE"):
        _note("WEDGE_PURE is set: installing pure Python")
        return []
    native = [FORWARDER] if sys.platform == "linux" else []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _note("mypyc is not installed: the signalling core stays pure Python")
        return native
    # A fixed name for the shared library the compiled modules live in (mypyc would
    # name it after a hash of COMPILED): an editable install maps top-level modules
    # by name once, when installed.
    compiled = mypycify([*MYPY_FLAGS, *COMPILED], opt_level="3", group_name="wedge_core")
    return [*compiled, *native]


class OptionalBuildExt(build_ext):
    """Builds the compiled modules, or none of them: a failed compile (no compiler,
    no Python headers) leaves the pure Python modules in charge, never half a set."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # the compiler's errors have no common base
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            _note(f"compiling failed ({exc}); installing pure Python, which runs slower")
            _note("for the compiled build: apt-get install gcc python3-dev, then reinstall")
            return
        if self.inplace:
            # Each module in the source tree now matches its source, rebuilt or not: date
            # them so. An extension older than its source is how tests/conftest.py tells
            # an edit that was never compiled.
            for extension in self.extensions:
                os.utime(self.get_ext_fullpath(extension.name))


setup(ext_modules=_compiled_modules(), cmdclass={"build_ext": OptionalBuildExt})
