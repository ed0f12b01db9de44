"""RFC 3261 §25 grammar, as regular expressions built rule by rule.

Each rule carries its ABNF beside it. The parser works on `str` decoded with
``surrogateescape``, so every byte of the wire survives a round trip even where a
peer sent something that is not UTF-8.

Deliberate deviations (all in the direction of accepting what real peers send and
RFC 4475 calls valid):

- LWS is ``[ \\t]*`` inside a header value: folded lines are unfolded to one SP
  before any rule runs (RFC 3261 §7.3.1: "equivalent to a single SP").
- ``received`` accepts an IPv6 address with or without brackets: RFC 3261's ABNF
  omits the brackets, RFC 5118 §4.5 shows both in the wild.
"""

from __future__ import annotations

import re

# Every repetition is possessive (``*+``, ``++``): SIP's grammar never needs to give
# characters back, and refusing to backtrack keeps each match linear in the input,
# so a hostile header costs no more than its length.

# alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = rf"[{TOKEN_CHARS}]++"
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#          "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
WORD = rf"[{TOKEN_CHARS}()<>:\\\"/\[\]?{{}}]++"
# LWS = [*WSP CRLF] 1*WSP ; SWS = [LWS]   (after unfolding: runs of SP / HTAB)
SWS = r"[ \t]*+"
LWS = r"[ \t]++"
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING = r'"[^"\\\r\n]*+(?:\\[^\r\n][^"\\\r\n]*+)*+"'
# IPv6reference = "[" IPv6address "]"  (the address itself is checked by ipaddress
# when the URI is parsed in full)
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]++\]"
IPV6_BARE = r"[0-9A-Fa-f]*+:[0-9A-Fa-f:.]++"
# host = hostname / IPv4address / IPv6reference; hostname and IPv4address share the
# characters below, and uri.py checks the finer structure of the ones it parses.
HOST = rf"(?:{IPV6_REFERENCE}|[A-Za-z0-9\-.]++)"
# gen-value = token / host / quoted-string
GEN_VALUE = rf"(?:{TOKEN}|{IPV6_REFERENCE}|{QUOTED_STRING})"
# generic-param = token [ EQUAL gen-value ]; EQUAL = SWS "=" SWS; SEMI = SWS ";" SWS
# via-received accepts a bare IPv6address too (see the module docstring).
# (The bare IPv6 form comes first: the token form would take its first group and,
# being possessive, never give it back.)
GENERIC_PARAM = rf"{TOKEN}(?:{SWS}={SWS}(?:{IPV6_BARE}|{GEN_VALUE}))?+"
PARAMS = rf"(?:{SWS};{SWS}{GENERIC_PARAM})*+"
# absoluteURI = scheme ":" ( hier-part / opaque-part ), scheme = ALPHA *( ALPHA / DIGIT /
# "+" / "-" / "." ). Only the shape is checked here: a scheme and no character that
# can never stand in a URI. The full grammar runs in uri.py on first use.
SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*+"
URI_IN_BRACKETS = rf"{SCHEME}:[^<>\s\"]*+"
# An addr-spec outside <> may hold neither "," nor "?" nor ";" (RFC 3261 §20.10: its
# parameters would be taken as header parameters).
URI_BARE = rf"{SCHEME}:[^;,?<>\s\"]*+"

token_re = re.compile(TOKEN)
param_re = re.compile(rf"{SWS};{SWS}({TOKEN})(?:{SWS}={SWS}({IPV6_BARE}|{GEN_VALUE}))?+")

# Method = INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
# Request-Line = Method SP Request-URI SP SIP-Version CRLF
request_line_re = re.compile(rf"({TOKEN}) ([^ \t<>]++) ([Ss][Ii][Pp]/[0-9]++\.[0-9]++)")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
# Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
status_line_re = re.compile(r"([Ss][Ii][Pp]/[0-9]++\.[0-9]++) ([0-9]++) ([^\r\n]*+)")
# Via = ( "Via" / "v" ) HCOLON via-parm *(COMMA via-parm)
# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS
# sent-by = host [ COLON port ]; COLON = SWS ":" SWS
via_re = re.compile(
    rf"({TOKEN}){SWS}/{SWS}({TOKEN}){SWS}/{SWS}({TOKEN}){LWS}"
    rf"({HOST})(?:{SWS}:{SWS}([0-9]{{1,5}}))?+({PARAMS}){SWS}"
)

# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
cseq_re = re.compile(rf"([0-9]++){LWS}({TOKEN})")
# Call-ID = ( "Call-ID" / "i" ) HCOLON callid; callid = word [ "@" word ]
call_id_re = re.compile(rf"{WORD}(?:@{WORD})?+")
# Max-Forwards / Content-Length / Expires: 1*DIGIT
digits_re = re.compile(r"[0-9]++")

# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
# display-name = *(token LWS) / quoted-string
# followed by *( SEMI generic-param ); the second form is a bare addr-spec.
name_addr_re = re.compile(
    rf"({QUOTED_STRING}|(?:{TOKEN}(?:{LWS}{TOKEN})*+)?+){SWS}<({URI_IN_BRACKETS})>({PARAMS}){SWS}"
    rf"|()({URI_BARE})({PARAMS}){SWS}"
)

# media-type = m-type SLASH m-subtype *(SEMI m-parameter)
media_type_re = re.compile(rf"({TOKEN}){SWS}/{SWS}({TOKEN})({PARAMS}){SWS}")

# rfc1123-date = wkday "," SP date1 SP time SP "GMT"
date_re = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)


# One value of a comma-separated list: quoted strings and <...> may hold commas.
_list_value_re = re.compile(r'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|<[^>]*+>|[^,"<]++)++|(?=,)|$')


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and angle brackets.

    RFC 3261 §7.3.1: several values of a list header may share one field line,
    separated by commas; a comma inside a quoted display name or inside the
    ``<...>`` of a URI does not separate values. An unbalanced quote or bracket
    leaves the rest of the line as one value, for the value's own grammar to refuse.
    """
    if "," not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",")]
    parts: list[str] = []
    position = 0
    end = len(value)
    while True:
        match = _list_value_re.match(value, position)
        stop = match.end() if match is not None else position
        if stop < end and value[stop] != ",":
            # An unterminated quote or "<": everything left is one (bad) value.
            parts.append(value[position:].strip())
            return parts
        parts.append(value[position:stop].strip())
        if stop >= end:
            return parts
        position = stop + 1
