"""A tiny authoritative DNS server for tests (dnspython on an asyncio UDP endpoint)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class AuthoritativeServer(asyncio.DatagramProtocol):
    """An authoritative DNS server for tests, on a datagram endpoint.

    ``records`` are (owner under ``zone``, TTL, type, data). Answers from them,
    NXDOMAIN or NODATA with the zone's SOA otherwise;
    records every question; answers none while ``silent``, SERVFAIL to all while
    ``servfail``."""

    def __init__(self, zone: str, soa: str, records: list[tuple[str, int, str, str]]) -> None:
        self.zone = zone
        self.soa = soa
        self.silent = False
        self.servfail = False
        self.port = 0
        self.questions: list[tuple[str, str]] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        for owner, ttl, rtype, data in records:
            name = dns.name.from_text(f"{owner}.{zone}")
            rdtype = dns.rdatatype.from_text(rtype)
            rrset = self._rrsets.setdefault(
                (name, rdtype), dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
            )
            rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, data), ttl)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        request = dns.message.from_wire(data)
        question = request.question[0]
        self.questions.append(
            (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
        )
        if self.silent or self._transport is None:
            return
        response = dns.message.make_response(request)
        if self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            self._transport.sendto(response.to_wire(), addr)
            return
        response.flags |= dns.flags.AA
        rrset = self._rrsets.get((question.name, question.rdtype))
        if rrset is not None:
            response.answer.append(rrset)
        else:
            if all(name != question.name for name, _ in self._rrsets):
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text(self.zone, 3600, "IN", "SOA", self.soa))
        self._transport.sendto(response.to_wire(), addr)
