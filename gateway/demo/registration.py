"""Who may use the demo PBX: REGISTER answered, Digest checked, browsers asked if alive.

The registrar (:mod:`gateway.demo.registrar`) decides who holds a name and
:mod:`gateway.demo.auth` checks passwords; both are pure tables that send nothing.
This part does the SIP around them: it answers each REGISTER with what the
registrar decided, challenges requests when there is a users file (REGISTER with
401, INVITE with 407, through :meth:`Registration.authenticated`), and checks on a
registered browser with an OPTIONS along its Path (:meth:`Registration.probe`):
when another browser wants a name, and when a call finds its browser gone
(:meth:`Registration.forget_if_gone`). A browser that does not answer, or whose
WebSocket Wedge finds closed, loses its name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.demo.auth import DigestAuth, Verdict
from gateway.demo.dialog import USER_AGENT, uri_address
from gateway.demo.registrar import Binding, Outcome, Refused, Registered, Registrar, Unregistered
from gateway.demo.wire import GONE, Wire
from gateway.sip import Flow, Headers, Request, Response, SipUri

__all__ = ["Registration"]

logger = logging.getLogger("wedge.demo")


class Registration:
    """See the module docstring.

    Args:
        wire: the PBX's way out.
        registrar: the names and their bindings.
        auth: Digest authentication, or None (no users file: any name, no password).
        probe_timeout: seconds a browser has to answer the OPTIONS that checks on it.
    """

    def __init__(
        self, wire: Wire, registrar: Registrar, auth: DigestAuth | None, probe_timeout: float
    ) -> None:
        self._wire = wire
        self.registrar = registrar
        self.auth = auth
        self._probe_timeout = probe_timeout

    def on_register(self, request: Request) -> None:
        to = request.to.uri
        user = to.user if isinstance(to, SipUri) else None
        if not user:
            self._wire.reply(request, 400, "No User", warning="register a name, as sip:name@host")
            return
        if not self.authenticated(request, user, "Authorization", 401):
            return
        self._registered(request, self.registrar.register(request, user, self._wire.now))

    def _registered(self, request: Request, outcome: Outcome, asked: bool = False) -> None:
        wire = self._wire
        if isinstance(outcome, Registered):
            binding = outcome.binding
            logger.info("registered user=%s contact=%s", binding.user, binding.contact)
            extra = [("Contact", f"<{binding.contact}>;expires={outcome.expires}")]
            extra += [("Path", path) for path in binding.path]
            wire.reply(request, 200, extra=tuple(extra))
        elif isinstance(outcome, Unregistered):
            logger.info("unregistered user=%s", outcome.user)
            wire.reply(request, 200)
        elif isinstance(outcome, Refused):
            logger.info(
                "registration refused user=%s status=%d reason=%r",
                request.to.uri,
                outcome.status,
                outcome.reason,
            )
            wire.reply(request, outcome.status, outcome.reason, warning=outcome.warning)
        elif asked:  # contested twice over: someone else took the name meanwhile
            wire.reply(request, 403, "Name In Use", warning="the name was taken meanwhile")
        else:
            contest = outcome
            self.probe(
                contest.holder,
                lambda alive: self._registered(
                    request, self.registrar.settle(contest, alive, wire.now), asked=True
                ),
            )

    def probe(self, binding: Binding, done: Callable[[bool], None]) -> None:
        """Ask the browser of ``binding`` (OPTIONS along its Path) whether it is there;
        ``done(alive)`` once it answers, or not within ``probe_timeout``."""
        wire = self._wire
        address = uri_address(binding.path[0] if binding.path else binding.contact)
        if address is None:
            done(False)
            return
        pairs = [("Via", wire.via()), ("Max-Forwards", "70")]
        pairs += [("Route", path) for path in binding.path]
        pairs += [
            ("From", f"<sip:pbx@{wire.host()}>;tag={wire.new_id()}"),
            ("To", f"<sip:{binding.user}@{wire.host()}>"),
            ("Call-ID", wire.new_id()),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", USER_AGENT),
            ("Content-Length", "0"),
        ]
        settled = False

        def settle(alive: bool) -> None:
            nonlocal settled
            if not settled:
                settled = True
                wire.cancel_timer(timer)
                if not alive:
                    logger.info("browser gone user=%s contact=%s", binding.user, binding.contact)
                    self.registrar.remove(binding)
                done(alive)

        def answered(response: Response | None) -> None:
            if response is None or response.status >= 200:
                settle(response is not None and response.status not in GONE)

        timer = wire.after(self._probe_timeout, lambda: settle(False))
        request = Request("OPTIONS", binding.contact, Headers.of(pairs))
        wire.send(request, Flow("udp", wire.local, address), answered)

    def forget_if_gone(self, user: str) -> None:
        """A call found ``user``'s browser gone: forget its registration if it is."""
        binding = self.registrar.lookup(user, self._wire.now)
        if binding is not None:
            self.probe(binding, lambda alive: None)

    def authenticated(self, request: Request, user: str, header: str, challenge: int) -> bool:
        """Digest auth when there is a users file; answers the request when it fails."""
        if self.auth is None:
            return True
        wire = self._wire
        verdict, username = self.auth.check(request, header, wire.now)
        if verdict is Verdict.OK and username == user:
            return True
        ask = "WWW-Authenticate" if challenge == 401 else "Proxy-Authenticate"
        if verdict in (Verdict.MISSING, Verdict.STALE):
            value = self.auth.challenge(wire.now, stale=verdict is Verdict.STALE)
            wire.reply(request, challenge, extra=((ask, value),))
        elif verdict is Verdict.UNKNOWN:
            wire.reply(request, 404, "Unknown User", warning=f"there is no user {username} here")
        elif verdict is Verdict.OK:
            wire.reply(request, 403, "Wrong User", warning=f"you are {username}, not {user}")
        else:
            wire.reply(request, 403, "Wrong Password", warning=f"wrong password for {user}")
        return False
