"""Certificates in service: the TLS side of listeners and trunks, checked and reloadable.

:class:`TlsManager` turns a validated :class:`~gateway.config.Config` into TLS
contexts and keeps them current:

- **At start** every file is read and checked (:mod:`certs.check`): a listener's
  certificates must cover the host it advertises, be valid, have a strong enough
  key and come with their chain in order; a trunk's client certificate likewise,
  without the name. Any problem refuses the start with a :class:`TlsSetupError`
  listing every problem, each naming its file.
- **Reload** (SIGHUP, or a file that changed under ``[wedge] cert_watch``) reads
  and checks everything again. What passes is used by the next handshakes; what
  does not keeps the previous certificate, and the log says why. Connections
  already up are never touched.
- **Expiry**: a certificate within ``[wedge] cert_warn_days`` of its end is
  logged as a warning at start, at every reload and once a day.

Per TLS listener, :meth:`TlsManager.peers` is the stream transport's
:class:`~gateway.transport.stream.TlsPeers`: a peer connecting from a trunk's
address is handshaken with that trunk's context (its CA bundle; a client
certificate required when the trunk says so or pins it), connections to a
trunk's target present our client certificate and ask for the target's name
(SNI, and the name checked), and after either handshake the trunk's pins and
name are checked (:func:`certs.pinning.check_peer`).
"""

from __future__ import annotations

import importlib
import logging
import os
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from certs.check import check_chain
from certs.context import NO_CLIENT_CERT, TLS12_CIPHERS, ClientTls, ClientVerify, ServerTls
from certs.load import CertificateError, KeyFiles, Loaded
from certs.pinning import PeerRule, check_peer
from gateway.config import CertFiles, Config, Listener, TlsVersion, Transport, Trunk
from gateway.proxy.routing import DEFAULT_PORTS, is_ip
from gateway.sip import SipUri, parse_uri
from gateway.sip.flow import Address

if TYPE_CHECKING:
    from gateway.policy import TrunkDirectory
    from gateway.transport.stream import TlsPeers

__all__ = ["TlsManager", "TlsSetupError", "peer_chain"]

logger = logging.getLogger("wedge.tls")

EXPIRY_LOG_INTERVAL = timedelta(days=1)
"""How often a certificate close to its end is logged again."""

_DER = getattr(importlib.import_module("_ssl"), "ENCODING_DER", 2)


class TlsSetupError(Exception):
    """Certificates Wedge cannot serve with: one line per problem, each naming its file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The peer's certificate chain as the TLS library verified it (DER, leaf first).

    Python 3.13 has ``get_verified_chain``; 3.10 to 3.12 have it on the inner
    object. Without either, the leaf alone.
    """
    getter: Callable[[], object] | None = getattr(ssl_object, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if getter is not None:
        chain = getter() or []
        assert isinstance(chain, list)
        return [item if isinstance(item, bytes) else item.public_bytes(_DER) for item in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _tls_version(version: TlsVersion) -> ssl.TLSVersion:
    return ssl.TLSVersion.TLSv1_3 if version is TlsVersion.V1_3 else ssl.TLSVersion.TLSv1_2


def _key_files(files: CertFiles) -> KeyFiles:
    return KeyFiles(files.cert, files.key, files.key_passphrase_env, files.key_passphrase_file)


def _listener_files(listener: Listener) -> KeyFiles:
    assert listener.cert is not None and listener.key is not None
    return KeyFiles(
        listener.cert, listener.key, listener.key_passphrase_env, listener.key_passphrase_file
    )


@dataclass
class _TrunkTls:
    """One tls trunk, as the TLS layer needs it."""

    trunk: Trunk
    rule: PeerRule
    """Its pins and name, checked after handshakes."""
    verify: ClientVerify
    """How a peer connecting from its addresses is handshaken."""
    inbound_checked: bool
    """Peers connecting from its addresses must present a certificate."""
    target_names: dict[Address, str | None]
    """Per listed target: the name to ask for (SNI) and check."""
    default_name: str | None
    """The name for targets without one of their own (resolved by DNS)."""
    clients: dict[str, ClientTls] = field(default_factory=dict)
    """Per listener name: the context for connections to the trunk from there."""


class TlsManager:
    """Every TLS context of a configuration; see the module docstring.

    Args:
        config: the validated policy.
        now: the clock (aware UTC), an argument so tests can move it.
    """

    def __init__(self, config: Config, now: Callable[[], datetime]) -> None:
        self.config = config
        self.now = now
        self.directory: TrunkDirectory | None = None
        """Set by the server once trunks are known: maps addresses to trunks."""
        self.servers: dict[str, ServerTls] = {}
        self.listeners: dict[str, Listener] = {}
        self.outbound: dict[str, ClientTls] = {}
        """Per TLS listener: connections to peers that are no trunk's."""
        self.trunks: dict[str, _TrunkTls] = {}
        self._signature: dict[Path, tuple[int, int, int] | None] = {}
        self._last_expiry_log: datetime | None = None
        problems = self._check_ciphers()
        if problems:
            raise TlsSetupError(problems)
        for listener in config.listeners:
            if listener.transport.secure:
                self._add_listener(listener)
        for trunk in config.trunks:
            if trunk.tls is not None:
                self._add_trunk(trunk)

    # -- building ---------------------------------------------------------------

    def _check_ciphers(self) -> list[str]:
        problems = []
        named = [(f'listener "{lst.name}".ciphers', lst.ciphers) for lst in self.config.listeners]
        named += [
            (f'trunk "{trunk.name}".ciphers', trunk.tls.ciphers)
            for trunk in self.config.trunks
            if trunk.tls is not None
        ]
        for key, ciphers in named:
            if ciphers is None:
                continue
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(ciphers)
            except ssl.SSLError:
                problems.append(f"{self.config.source}: {key}: OpenSSL knows none of {ciphers!r}")
        return problems

    def _add_listener(self, listener: Listener) -> None:
        profiles = [self._listener_verify(listener)]
        profiles += [
            _verify_of(trunk)
            for trunk in self.config.trunks
            if trunk.tls is not None
            and listener.transport is Transport.TLS
            and trunk.listener in (None, listener.name)
            and _checks_inbound(trunk)
        ]
        self.listeners[listener.name] = listener
        self.servers[listener.name] = ServerTls(
            _listener_files(listener),
            [_key_files(files) for files in listener.sni],
            profiles=profiles,
            ciphers=listener.ciphers or TLS12_CIPHERS,
            min_version=_tls_version(listener.tls_min_version),
        )
        if listener.transport is Transport.TLS:
            self.outbound[listener.name] = ClientTls(
                identity=_listener_files(listener),
                ciphers=listener.ciphers or TLS12_CIPHERS,
                min_version=_tls_version(listener.tls_min_version),
            )

    @staticmethod
    def _listener_verify(listener: Listener) -> ClientVerify:
        if listener.client_ca is None:
            return NO_CLIENT_CERT
        return ClientVerify(listener.client_ca, request=True, require=listener.require_client_cert)

    def _add_trunk(self, trunk: Trunk) -> None:
        tls = trunk.tls
        assert tls is not None
        uri = parse_uri(trunk.uri)
        assert isinstance(uri, SipUri)
        host = uri.host.strip("[]").lower().rstrip(".")
        default_name = tls.name or (None if is_ip(host) else host)
        names: dict[Address, str | None] = {
            (target.host, target.port): target.tls_name or default_name for target in trunk.targets
        }
        if not trunk.targets and is_ip(host):
            names[(host, uri.port or DEFAULT_PORTS["tls"])] = default_name
        checked = _checks_inbound(trunk)
        entry = _TrunkTls(
            trunk,
            PeerRule(
                trunk.name,
                pins=tls.pins,
                name=(tls.name or default_name) if checked else None,
                require_cert=checked,
            ),
            _verify_of(trunk),
            checked,
            names,
            default_name,
        )
        for listener in self.config.listeners:
            if listener.transport is not Transport.TLS or trunk.listener not in (
                None,
                listener.name,
            ):
                continue
            identity = tls.identity
            entry.clients[listener.name] = ClientTls(
                ca_file=tls.ca,
                identity=_key_files(identity) if identity else _listener_files(listener),
                ciphers=tls.ciphers or TLS12_CIPHERS,
                min_version=_tls_version(tls.min_version),
            )
        self.trunks[trunk.name] = entry

    # -- loading, checking, reloading ------------------------------------------------

    def load(self) -> None:
        """The first reading, at start: every problem found, or all served.

        Raises:
            TlsSetupError: one line per problem, each naming its file.
        """
        now = self.now()
        problems: list[str] = []
        seen: set[tuple[str, str]] = set()
        commits: list[Callable[[], None]] = []
        for name, check in self._holders():
            try:
                commits.append(check(now))
            except CertificateError as exc:
                # One file may serve several holders (a listener's certificate is
                # also its client certificate): one line per problem.
                if (exc.path, exc.problem) not in seen:
                    seen.add((exc.path, exc.problem))
                    problems.append(f"{exc.path}: {exc.problem} ({name})")
        self._signature = self._files_signature()
        if problems:
            raise TlsSetupError(problems)
        for commit in commits:
            commit()
        self._log_certificates(now, force=True)

    def reload(self, why: str) -> bool:
        """Read every file again; serve what passes its checks, keep the rest.
        Returns True when everything was reloaded."""
        now = self.now()
        self._signature = self._files_signature()
        ok = True
        for name, check in self._holders():
            try:
                commit = check(now)
            except CertificateError as exc:
                ok = False
                logger.error(
                    "! tls reload refused what=%s file=%s reason=%r: keeping the certificate "
                    "in use",
                    name,
                    exc.path,
                    exc.problem,
                )
                continue
            commit()
        logger.warning("tls reloaded why=%s result=%s", why, "ok" if ok else "partly")
        self._log_certificates(now, force=True)
        return ok

    def changed(self) -> bool:
        """A file in use (or that failed to load) differs from the last reading."""
        return self._files_signature() != self._signature

    def tick(self) -> None:
        """The periodic look (``[wedge] cert_watch``): reload on change, and the
        daily expiry warnings."""
        if self.changed():
            self.reload("files changed")
        else:
            self._log_certificates(self.now(), force=False)

    def _holders(
        self,
    ) -> Iterable[tuple[str, Callable[[datetime], Callable[[], None]]]]:
        """(what, check): ``check(now)`` reads and checks, and returns the commit."""
        for name, server in self.servers.items():
            yield f'listener "{name}"', self._server_check(self.listeners[name], server)
        for name, client in self.outbound.items():
            yield f'listener "{name}" (outbound)', self._client_check(client)
        for trunk_name, entry in self.trunks.items():
            for listener_name, client in entry.clients.items():
                what = f'trunk "{trunk_name}" via listener "{listener_name}"'
                yield what, self._client_check(client)

    def _server_check(
        self, listener: Listener, server: ServerTls
    ) -> Callable[[datetime], Callable[[], None]]:
        warn_days = self.config.wedge.cert_warn_days

        host = listener.advertise_host
        # An FQDN must be covered: peers ask for it by name (SNI) and check it. A
        # listener that advertises an address (no FQDN configured) is only warned
        # about: its clients may well know it by a name its certificate carries.
        strict = not is_ip(host.strip("[]"))

        def check(now: datetime) -> Callable[[], None]:
            generation = server.prepare()
            uncovered: list[str] = []
            for item in generation.loaded:
                report = check_chain(item.chain, now, warn_days=warn_days)
                if report.problems:
                    raise CertificateError(item.files.cert, "; ".join(report.problems))
                uncovered += check_chain(item.chain, now, names=[host]).problems
            if len(uncovered) == len(generation.loaded):
                first = server.files[0].cert
                problem = (
                    uncovered[0]
                    if not listener.sni
                    else f"no certificate of the listener covers {host}, the host it advertises"
                )
                if strict:
                    raise CertificateError(first, problem)
                logger.warning("! certificate file=%s: %s", first, problem)
            return lambda: server.commit(generation)

        return check

    def _client_check(self, client: ClientTls) -> Callable[[datetime], Callable[[], None]]:
        warn_days = self.config.wedge.cert_warn_days

        def check(now: datetime) -> Callable[[], None]:
            prepared = client.prepare()
            item = prepared[1]
            if item is not None:
                report = check_chain(item.chain, now, warn_days=warn_days)
                if report.problems:
                    raise CertificateError(item.files.cert, "; ".join(report.problems))
            return lambda: client.commit(prepared)

        return check

    def _loaded(self) -> dict[Path, Loaded]:
        found: dict[Path, Loaded] = {}
        for server in self.servers.values():
            for item in server.loaded:
                found.setdefault(item.files.cert, item)
        clients = [*self.outbound.values()]
        clients += [client for entry in self.trunks.values() for client in entry.clients.values()]
        for client in clients:
            if client.loaded is not None:
                found.setdefault(client.loaded.files.cert, client.loaded)
        return found

    def _log_certificates(self, now: datetime, *, force: bool) -> None:
        last = self._last_expiry_log
        if not force and last is not None and now - last < EXPIRY_LOG_INTERVAL:
            return
        self._last_expiry_log = now
        warn_days = self.config.wedge.cert_warn_days
        for path, item in self._loaded().items():
            report = check_chain(item.chain, now, warn_days=warn_days)
            if force:
                logger.info(
                    "certificate file=%s subject=%s days_left=%d not_after=%s",
                    path,
                    item.leaf.subject.rfc4514_string(),
                    report.days_left,
                    f"{item.leaf.not_valid_after_utc:%Y-%m-%d}",
                )
            for warning in (*report.warnings, *report.problems):
                logger.warning("! certificate expiring file=%s: %s", path, warning)

    def expiry(self) -> dict[str, int]:
        """Days left per certificate file in use (for a status page or metric)."""
        now = self.now()
        return {
            str(path): check_chain(item.chain, now).days_left
            for path, item in self._loaded().items()
        }

    def _files(self) -> set[Path]:
        files: set[Path] = set()
        for server in self.servers.values():
            for item in server.files:
                files |= {item.cert, item.key}
                if item.passphrase_file is not None:
                    files.add(item.passphrase_file)
            for profile in server.profiles:
                if profile.ca_file is not None:
                    files.add(profile.ca_file)
        clients = [*self.outbound.values()]
        clients += [client for entry in self.trunks.values() for client in entry.clients.values()]
        for client in clients:
            if client.ca_file is not None:
                files.add(client.ca_file)
            if client.identity is not None:
                files |= {client.identity.cert, client.identity.key}
        return files

    def _files_signature(self) -> dict[Path, tuple[int, int, int] | None]:
        signature: dict[Path, tuple[int, int, int] | None] = {}
        for path in self._files():
            try:
                stat = os.stat(path)
            except OSError:
                signature[path] = None
            else:
                signature[path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        return signature

    # -- serving ----------------------------------------------------------------------

    def server_context(self, listener: str) -> ssl.SSLContext:
        """A listener's context (the WSS server keeps this one; SNI moves each
        handshake to the current certificates)."""
        return self.servers[listener].context()

    def peers(self, listener: str) -> TlsPeers:
        """The stream transport's TLS policy for a tls listener."""
        return _ListenerPeers(self, listener)

    def inbound_trunk(self, remote: Address, listener: str) -> _TrunkTls | None:
        """The trunk whose certificates a peer connecting from ``remote`` must show."""
        for entry in self.trunks.values():
            if not entry.inbound_checked or entry.trunk.listener not in (None, listener):
                continue
            if any(address[0] == remote[0] for address in self._addresses(entry)):
                return entry
        return None

    def outbound_trunk(self, remote: Address) -> _TrunkTls | None:
        """The trunk one of whose targets is ``remote``."""
        for entry in self.trunks.values():
            if remote in self._addresses(entry):
                return entry
        return None

    def probe_name(self, key: tuple[str, str, Address]) -> str | None:
        """The host an OPTIONS probe of a tls trunk's target addresses: the name its
        certificate carries (``sip2.pstnhub.microsoft.com``), as the peer knows itself."""
        trunk, transport, address = key
        entry = self.trunks.get(trunk)
        if entry is None or transport != "tls":
            return None
        return entry.target_names.get(address, entry.default_name)

    def _addresses(self, entry: _TrunkTls) -> list[Address]:
        found = list(entry.target_names)
        if self.directory is not None and entry.trunk.name in self.directory.trunks:
            found += [
                address
                for transport, address in self.directory.targets(entry.trunk.name)
                if transport == "tls"
            ]
        return found


class _ListenerPeers:
    """:class:`~gateway.transport.stream.TlsPeers` for one tls listener."""

    def __init__(self, manager: TlsManager, listener: str) -> None:
        self.manager = manager
        self.listener = listener

    def server_context(self, remote: Address) -> ssl.SSLContext:
        entry = self.manager.inbound_trunk(remote, self.listener)
        server = self.manager.servers[self.listener]
        return server.context(entry.verify if entry is not None else server.profiles[0])

    def client_context(self, remote: Address) -> tuple[ssl.SSLContext, str | None]:
        entry = self.manager.outbound_trunk(remote)
        if entry is not None and self.listener in entry.clients:
            name = entry.target_names.get(remote, entry.default_name)
            return entry.clients[self.listener].context, name
        return self.manager.outbound[self.listener].context, None

    def refuse(self, ssl_object: ssl.SSLObject, remote: Address, inbound: bool) -> str | None:
        if inbound:
            entry = self.manager.inbound_trunk(remote, self.listener)
        else:
            entry = self.manager.outbound_trunk(remote)
        if entry is None:
            return None
        rule = entry.rule
        if not rule.pins and not (inbound and rule.require_cert):
            return None
        refusal = check_peer(peer_chain(ssl_object), rule, inbound=inbound)
        if refusal is None:
            return None
        return (
            f"trunk={rule.trunk} reason={refusal.reason!r} presented={refusal.presented} "
            f"expected={','.join(rule.pins) or '-'}"
        )


def _checks_inbound(trunk: Trunk) -> bool:
    tls = trunk.tls
    return tls is not None and (tls.require_client_cert or bool(tls.pins))


def _verify_of(trunk: Trunk) -> ClientVerify:
    tls = trunk.tls
    assert tls is not None
    if not _checks_inbound(trunk):
        return NO_CLIENT_CERT
    return ClientVerify(tls.ca, request=True, require=True)
