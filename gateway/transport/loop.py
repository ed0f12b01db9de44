"""Choose the event loop implementation before anything creates a loop."""

from __future__ import annotations

import asyncio
import logging
import sys

__all__ = ["install_uvloop"]

logger = logging.getLogger("wedge.transport")


def install_uvloop() -> bool:
    """Use uvloop for every loop created from now on, where it is available.

    Only on Linux: uvloop builds on macOS too, but Wedge is only measured and
    tested on Linux, and a loop nobody has tested is a worse default than asyncio's.
    Returns True when uvloop was installed.
    """
    if not sys.platform.startswith("linux"):
        logger.info("= event loop=asyncio reason=not-linux")
        return False
    try:
        import uvloop
    except ImportError:
        logger.info("= event loop=asyncio reason=uvloop-not-installed")
        return False
    # The policy (not uvloop.run) so asyncio.run() and pytest-asyncio both pick it
    # up; Python 3.11 has no loop_factory on asyncio.run.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    logger.info("= event loop=uvloop version=%s", getattr(uvloop, "__version__", "?"))
    return True
