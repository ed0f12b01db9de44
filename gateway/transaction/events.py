"""What the transaction layer tells its user (the proxy core, RFC 3261's "TU").

Every event is a small frozen value named in the past tense; the layer returns
them, in order, from :meth:`TransactionLayer.events`. A transaction is named by a
:class:`TransactionKey`, which the user keeps to relate later events (and, for a
server transaction, the CANCEL that targets it) to the request that started it.
"""

from __future__ import annotations

from typing import Final

from gateway.sip.flow import Flow
from gateway.sip.message import Request, Response

__all__ = [
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "TransactionKey",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
]


class TransactionKey:
    """The name of one transaction, built from the message fields RFC 3261 matches on.

    A value: equal keys name the same transaction, and a key is hashed once, when
    made (every message looks its transaction up by one). Written out rather than
    a NamedTuple, whose constructor stays interpreted Python in the compiled build.

    A client transaction is named by the branch of the top Via it sent and the
    CSeq method (§17.1.3); a server transaction also by the sent-by of that Via
    (§17.2.3), because the branch is only unique per sender. A server
    transaction started by an RFC 2543 peer (a branch without the ``z9hG4bK``
    cookie, or none) has no usable branch, so its key carries the §17.2.3
    fallback fields as well.

    Attributes:
        branch: the top Via's branch parameter ("" when an RFC 2543 request had none).
        method: the CSeq method of the request that created the transaction (never ACK).
        sent_by: ``host[:port]`` of the request's top Via, host in lower case, for a
            server transaction; None for a client transaction.
        legacy: RFC 2543 fallback only (§17.2.3): Call-ID, From tag and CSeq number
            of the request; empty for every request that carries the magic cookie.
    """

    __slots__ = ("_hash", "branch", "legacy", "method", "sent_by")

    def __init__(
        self, branch: str, method: str, sent_by: str | None = None, legacy: tuple[str, ...] = ()
    ) -> None:
        self.branch: Final = branch
        self.method: Final = method
        self.sent_by: Final = sent_by
        self.legacy: Final = legacy
        self._hash: Final = hash((branch, method, sent_by, legacy))

    @property
    def is_server(self) -> bool:
        """True for a server transaction (we received the request)."""
        return self.sent_by is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransactionKey):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.branch == other.branch
            and self.method == other.method
            and self.sent_by == other.sent_by
            and self.legacy == other.legacy
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            f"TransactionKey(branch={self.branch!r}, method={self.method!r}, "
            f"sent_by={self.sent_by!r}, legacy={self.legacy!r})"
        )

    def __str__(self) -> str:
        return self.branch or "/".join(self.legacy)


class _Event:
    """Events compare, hash and print as the values they carry.

    Written out rather than frozen dataclasses: the layer makes several per
    message, and the methods ``dataclasses`` generates stay interpreted Python in
    the compiled build (setup.py), several times the cost of these.
    """

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Event)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._values()!r}"


class RequestReceived(_Event):
    """A request arrived that the user must act on.

    That is the first copy of a request (a new server transaction), an ACK that
    no server transaction absorbs (the ACK for a 2xx, which is a transaction of
    its own, RFC 3261 §17.1.1.3 and §13.2.2.4, or a stray ACK), or a CANCEL (a
    new non-INVITE server transaction, §9.2). Retransmissions are absorbed and
    never reported again.

    Attributes:
        request: the request as received. The user may edit it; the layer kept
            what it needs.
        flow: the flow it arrived on; the server transaction answers on the same flow.
        key: the new server transaction, or None for an ACK (an ACK never creates one).
        cancels: for a CANCEL, the INVITE server transaction it matches by the §9.2
            rules, or None when there is none (the user answers 481). None for
            other methods.
    """

    __slots__ = ("cancels", "flow", "key", "request")

    def __init__(
        self,
        request: Request,
        flow: Flow,
        key: TransactionKey | None,
        cancels: TransactionKey | None = None,
    ) -> None:
        self.request: Final = request
        self.flow: Final = flow
        self.key: Final = key
        self.cancels: Final = cancels

    def _values(self) -> tuple[object, ...]:
        return (self.request, self.flow, self.key, self.cancels)


class ResponseReceived(_Event):
    """A response arrived for one of our client transactions and goes to the user.

    Provisional responses and the first final response are reported; a 2xx that
    arrives again while the INVITE client transaction is Accepted (RFC 6026's
    update to RFC 3261 §17.1.1.2) is reported each time, so a proxy can forward
    every 2xx upstream. A retransmitted non-2xx final response is absorbed (and
    re-ACKed).

    Attributes:
        response: the response as received.
        key: the client transaction it belongs to; None only for a stray response
            when the layer was built with ``report_stray_responses=True``.
    """

    __slots__ = ("key", "response")

    def __init__(self, response: Response, key: TransactionKey | None) -> None:
        self.response: Final = response
        self.key: Final = key

    def _values(self) -> tuple[object, ...]:
        return (self.response, self.key)


class _Ended(_Event):
    """An event that names a transaction and nothing else: it has ended."""

    __slots__ = ("key",)

    def __init__(self, key: TransactionKey) -> None:
        self.key: Final = key

    def _values(self) -> tuple[object, ...]:
        return (self.key,)


class TransactionTimedOut(_Ended):
    """A transaction gave up waiting; it is terminated.

    Client: Timer B (INVITE, still Calling) or Timer F (non-INVITE) fired before
    any final response came (§17.1.1.2, §17.1.2.2); a proxy treats it as a 408
    (§16.7 step 2's "best response"). Server: Timer H fired, the ACK for our
    non-2xx final response never came (§17.2.1).
    """

    __slots__ = ()


class TransportFailed(_Ended):
    """The transport could not carry this transaction's messages (RFC 3261 §17.1.4,
    §17.2.4); it is terminated.

    Reported after :meth:`TransactionLayer.transport_failed` for every
    transaction on that flow that the failure ends. A client transaction that had
    no final response yet is to be treated like a 503 (§16.9). It can also arrive
    after the final response (an INVITE client transaction whose ACK could not
    be sent, a server transaction whose final response could not be), when the
    user only has to forget the key.
    """

    __slots__ = ()


class TransactionTerminated(_Ended):
    """A transaction reached Terminated and the layer forgot it.

    Always the last event about ``key``, after any TransactionTimedOut or
    TransportFailed; the user can drop whatever it kept for the key.
    """

    __slots__ = ()


Event = (
    RequestReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransportFailed
    | TransactionTerminated
)
