"""RFC 3261 §17 transactions as pure state machines driven by `now`."""

from gateway.transaction.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from gateway.transaction.layer import MAGIC_COOKIE, TimerConfig, TransactionLayer

__all__ = [
    "MAGIC_COOKIE",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "TimerConfig",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
]
