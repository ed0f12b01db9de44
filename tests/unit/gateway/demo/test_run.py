"""``wedge demo``'s set-up: options, the users file, the certificate, the configuration."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import MediaProfile, Transport
from gateway.demo.certificate import data_dir, ensure_certificate
from gateway.demo.run import DemoError, _load_users, _options, _web_root, add_arguments, demo_config

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def web(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "dist").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>\n")
    (root / "dist" / "jssip.js").write_text("var JsSIP = {};\n")
    return root


def test_defaults(web: Path) -> None:
    chosen = _options(options("--web-root", str(web)))
    assert (chosen.host, chosen.port, chosen.users, chosen.web_root) == (
        "127.0.0.1",
        8443,
        None,
        web,
    )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--host", "0.0.0.0"], "not a wildcard"),
        (["--host", "phone.example"], "give an IP address"),
        (["--port", "70000"], "not a port"),
        (["--media-ports", "50000"], "expected FIRST-LAST"),
    ],
)
def test_bad_options(web: Path, argv: list[str], complaint: str) -> None:
    with pytest.raises(DemoError, match=complaint):
        _options(options("--web-root", str(web), *argv))


def test_web_root_needs_jssip_built(web: Path) -> None:
    (web / "dist" / "jssip.js").unlink()
    with pytest.raises(DemoError, match="npm ci"):
        _web_root(web)
    with pytest.raises(DemoError, match="no web demo"):
        _web_root(web / "nowhere")


def test_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users]\nalice = "wonderland"\nbob = "builder"\n')
    assert _load_users(users) == {"alice": "wonderland", "bob": "builder"}
    for text, complaint in (
        ("alice = 1\n", r"\[users\] table"),
        ('[users]\n"a b" = "x"\n', "a name is"),
        ('[users]\nalice = ""\n', "non-empty string"),
        ("[users\n", "not TOML"),
    ):
        users.write_text(text)
        with pytest.raises(DemoError, match=complaint):
            _load_users(users)


def test_cli_says_what_is_wrong(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "--host", "::", "--data-dir", str(tmp_path)]) == 2
    assert "wedge demo: --host ::: give the address browsers will use" in capsys.readouterr().err


def test_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "wedge" / "demo"
    first = ensure_certificate(folder, "127.0.0.1", NOW)
    assert first.created and first.cert.exists() and (first.key.stat().st_mode & 0o777) == 0o600
    assert len(first.fingerprint.split(":")) == 32
    again = ensure_certificate(folder, "127.0.0.1", NOW + timedelta(days=30))
    assert not again.created and again.fingerprint == first.fingerprint
    # Another address, or an end in sight: a new one.
    other = ensure_certificate(folder, "192.0.2.7", NOW + timedelta(days=30))
    assert other.created and other.fingerprint != first.fingerprint
    assert ensure_certificate(folder, "192.0.2.7", NOW + timedelta(days=30 + 360)).created


def test_data_dir_follows_xdg() -> None:
    assert data_dir({"XDG_DATA_HOME": "/x/data", "HOME": "/home/u"}) == Path("/x/data/wedge/demo")
    assert data_dir({"HOME": "/home/u"}) == Path("/home/u/.local/share/wedge/demo")


def test_demo_config(tmp_path: Path) -> None:
    cert = ensure_certificate(tmp_path, "127.0.0.1", NOW)
    config = demo_config("127.0.0.1", 8443, cert, ("127.0.0.1", 5099))
    browsers, pbx = config.listeners
    assert (browsers.name, browsers.transport, browsers.bind_port) == (
        "browsers",
        Transport.WSS,
        8443,
    )
    assert browsers.cert == cert.cert and browsers.key == cert.key
    assert (pbx.transport, pbx.bind_host, pbx.bind_port) == (Transport.UDP, "127.0.0.1", 0)
    [trunk] = config.trunks
    assert trunk.uri == "sip:127.0.0.1:5099" and trunk.media_profile is MediaProfile.AVP
    assert [(t.host, t.port) for t in trunk.targets] == [("127.0.0.1", 5099)]
    [route] = config.routes
    assert (route.from_listener, route.to_trunk) == ("browsers", trunk.name)
    assert config.media.bind == "127.0.0.1"
