"""Local TLS for the adapters (``make demo``, the tests, trying mutual TLS by hand), from the local CA.

``make_dev_tls(folder, systems)`` issues, with ``services/devkafka/local_ca.py`` (one CA,
its key gone when the call returns): ``adapter.pem``/``adapter.key`` for the adapters
(``localhost``, ``127.0.0.1``) and ``<system>.pem``/``<system>.key`` per departmental
system, whose CN is the system id (the tokens file's default ``client_cert_cn``). Never
for production: there the department's own CA issues the certificates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.devkafka import local_ca

SERVER = "adapter"


@dataclass(frozen=True)
class DevTLS:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.folder / f"{SERVER}.pem"

    @property
    def key(self) -> Path:
        return self.folder / f"{SERVER}.key"

    def client(self, system: str) -> tuple[Path, Path]:
        """(certificate, key) of a departmental system."""
        return self.folder / f"{system}.pem", self.folder / f"{system}.key"

    def env(self, mutual: bool = True) -> dict[str, str]:
        """The adapter settings that serve with these files."""
        out = {"CLUEBUS_ADAPTER_TLS_CERTFILE": str(self.cert), "CLUEBUS_ADAPTER_TLS_KEYFILE": str(self.key)}
        if mutual:
            out["CLUEBUS_ADAPTER_TLS_CLIENT_CAFILE"] = str(self.ca)
        return out


def make_dev_tls(folder: Path, systems: list[str] | tuple[str, ...] = ()) -> DevTLS:
    """Issue (or reuse, while valid and complete) the adapter's and the systems' certificates."""
    tls = DevTLS(Path(folder))
    wanted = [tls.ca, tls.cert, tls.key, *(p for s in systems for p in tls.client(s))]
    if all(p.exists() for p in wanted) and local_ca.valid_for(tls.cert):
        return tls
    leaves = [local_ca.Leaf(SERVER, "localhost", ("DNS:localhost", "IP:127.0.0.1"), server=True, client=False)]
    leaves += [local_ca.Leaf(system, system, (), server=False, client=True) for system in systems]
    local_ca.issue(tls.folder, leaves)
    return tls
