"""Logging for operators: one line per event, as text or as JSON.

Wedge's log lines carry ``key=value`` fields (``call-id=... flow=udp:192.0.2.1:5060``);
the JSON form puts the line in ``msg`` next to the time, level and logger, for log
shippers that want one object per line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["LEVELS", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error")


class _JsonFormatter(logging.Formatter):
    def __init__(self, worker: int | None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "text", worker: int | None = None) -> None:
    """Send Wedge's logs to standard error at ``level``, as ``text`` or ``json``;
    ``worker``: the SIP worker this process is, named on every line."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(worker))
    else:
        tag = "" if worker is None else f" worker={worker}"
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-7s %(name)s{tag}: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The websockets library logs every handshake failure at error level with a
    # traceback; Wedge's own ws transport logs what an operator needs.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
