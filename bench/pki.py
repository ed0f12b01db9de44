"""Write a throw-away test PKI for the benchmarks: a CA and one server certificate.

The server certificate names ``localhost``, ``sip.bench.test`` and 127.0.0.1-9, so
both systems under test (Wedge on one 127.0.0.x address, Kamailio on another)
can share it, and clients verify it against ``ca.pem``.

Run: ``python bench/pki.py DIR`` writes DIR/ca.pem, DIR/server.pem, DIR/server.key.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certs.generate import cert_pem, key_pem, make_ca, make_certificate, write_pem

SERVER_NAME = "sip.bench.test"


def write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """Write ca.pem, server.pem and server.key into ``folder``; return their paths."""
    now = datetime.now(UTC)
    ca, ca_key = make_ca("Wedge Bench CA", now=now)
    ips = [f"127.0.0.{n}" for n in range(1, 10)]
    server, server_key = make_certificate(
        ca, ca_key, SERVER_NAME, [SERVER_NAME, "localhost"], ips, now=now
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    write_pem(paths[0], cert_pem(ca))
    write_pem(paths[1], cert_pem(server))
    write_pem(paths[2], key_pem(server_key))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    for path in write_pki(args.folder):
        print(path)


if __name__ == "__main__":
    main()
