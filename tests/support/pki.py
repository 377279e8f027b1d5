"""Throw-away certificates for TLS tests, made with the `openssl` command line tool.

A CA, server certificates for 127.0.0.1 signed by it (two, to test rotation), a client
certificate for mutual TLS, and a second CA nobody trusts. EC P-256 keys: fast to make.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import require_binary


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    server2_cert: Path  # same CA and names, another key: a rotated certificate
    server2_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path  # a CA that signed nothing we trust
    rogue_cert: Path  # 127.0.0.1, signed by rogue_ca
    rogue_key: Path


def _run(openssl: str, *args: str, cwd: Path) -> None:
    result = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stderr}")


def _ca(openssl: str, d: Path, name: str) -> None:
    _run(
        openssl,
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip


def _leaf(openssl: str, d: Path, name: str, ca: str, ext: str) -> None:
    _run(
        openssl,
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    (d / f"{name}.ext").write_text(ext)
    _run(
        openssl,
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


SERVER_EXT = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
    "extendedKeyUsage=serverAuth\n"
)
CLIENT_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"


def make_pki(d: Path) -> Pki:
    openssl = require_binary("openssl")
    d.mkdir(parents=True, exist_ok=True)
    _ca(openssl, d, "ca")
    _ca(openssl, d, "rogue-ca")
    _leaf(openssl, d, "server", "ca", SERVER_EXT)
    _leaf(openssl, d, "server2", "ca", SERVER_EXT)
    _leaf(openssl, d, "client", "ca", CLIENT_EXT)
    _leaf(openssl, d, "rogue", "rogue-ca", SERVER_EXT)
    return Pki(
        dir=d,
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        server2_cert=d / "server2.crt",
        server2_key=d / "server2.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
        rogue_ca=d / "rogue-ca.crt",
        rogue_cert=d / "rogue.crt",
        rogue_key=d / "rogue.key",
    )
