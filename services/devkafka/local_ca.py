"""The local CA of the development profiles: one throw-away CA per folder, its key never kept.

:func:`issue` makes a fresh CA and signs every certificate asked for in the same call
(EC P-256, SHA-256, with ``openssl``); the CA's private key lives only in a temporary
folder and is gone when the call returns, so nobody can mint another certificate this
CA vouches for. When a certificate nears its end, the whole set is simply made again.

Used by the secure broker profile (``secure.py``: the broker's certificate) and by the
adapters' TLS in ``make demo`` and the tests (``services/adapters/tls_dev.py``: a server
certificate and one client certificate per departmental system, for mutual TLS).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CERT_DAYS = 397
CA_DAYS = 398
RENEW_BEFORE_DAYS = 14


class CAError(RuntimeError):
    """openssl is missing or failed; the message says which step."""


@dataclass(frozen=True)
class Leaf:
    """A certificate to sign: file stem, subject CN, subject alternative names, key usages."""

    name: str
    common_name: str
    alt_names: tuple[str, ...] = ()  # "DNS:localhost", "IP:127.0.0.1"
    server: bool = True
    client: bool = True


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        raise CAError("openssl not found: install openssl to make the local CA")
    return exe


def _run(cmd: list[str], what: str, cwd: Path) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CAError(f"{what} failed: {detail[0]}")


def valid_for(cert: Path, days: int = RENEW_BEFORE_DAYS) -> bool:
    """Whether ``cert`` exists and is still valid ``days`` from now."""
    if not cert.exists():
        return False
    proc = subprocess.run(
        [_openssl(), "x509", "-checkend", str(days * 86400), "-noout", "-in", str(cert)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def issue(out_dir: Path, leaves: list[Leaf], *, work_dir: Path | None = None) -> Path:
    """A fresh CA (``ca.pem``) and ``<name>.pem`` + ``<name>.key`` (0600) per leaf in ``out_dir``.

    Files are written in a temporary folder (under ``work_dir``, default ``out_dir``) and
    moved in at the end; the CA key stays behind and is deleted with that folder.
    """
    openssl = _openssl()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".ca-", dir=work_dir or out_dir) as tmp_name:
        tmp = Path(tmp_name)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        _run(
            [
                openssl,
                "req",
                "-x509",
                *ec,
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                str(CA_DAYS),
                "-sha256",
                "-subj",
                f"/O=cluebus/CN=cluebus local CA {secrets.token_hex(4)}",
                "-addext",
                "basicConstraints=critical,CA:TRUE,pathlen:0",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-addext",
                "subjectKeyIdentifier=hash",
            ],
            "creating the local CA",
            tmp,
        )
        for leaf in leaves:
            usages = [u for u, on in (("serverAuth", leaf.server), ("clientAuth", leaf.client)) if on]
            ext = tmp / f"{leaf.name}.ext"
            ext.write_text(
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage={','.join(usages)}\n"
                + (f"subjectAltName={','.join(leaf.alt_names)}\n" if leaf.alt_names else "")
                + "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            )
            _run(
                [
                    openssl,
                    "req",
                    "-new",
                    *ec,
                    "-keyout",
                    f"{leaf.name}.key",
                    "-out",
                    f"{leaf.name}.csr",
                    "-subj",
                    f"/O=cluebus/CN={leaf.common_name}",
                ],
                f"creating the key of {leaf.name}",
                tmp,
            )
            _run(
                [
                    openssl,
                    "x509",
                    "-req",
                    "-in",
                    f"{leaf.name}.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    str(int.from_bytes(secrets.token_bytes(16), "big")),
                    "-days",
                    str(CERT_DAYS),
                    "-sha256",
                    "-extfile",
                    ext.name,
                    "-out",
                    f"{leaf.name}.pem",
                ],
                f"signing the certificate of {leaf.name}",
                tmp,
            )
        names = ["ca.pem"] + [f"{leaf.name}.{suffix}" for leaf in leaves for suffix in ("pem", "key")]
        for name in names:
            os.chmod(tmp / name, 0o600 if name.endswith(".key") else 0o644)
            os.replace(tmp / name, out_dir / name)
        # ca.key, the CSRs and the extension files go with the temporary folder.
    return out_dir / "ca.pem"
