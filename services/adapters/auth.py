"""API tokens of departmental systems.

The tokens file (TOML) holds only SHA-256 hashes::

    [systems.jinghai-people-hospital-his]
    source = "hospital"
    token_sha256 = "9f86d08..."
    client_cert_cn = "jinghai-people-hospital-his"   # optional; mutual TLS (default: the id)

A request carries ``Authorization: Bearer <token>``. The adapter stamps
``source`` and ``source_system`` from the matching entry, never from the body.
No token or an unknown token is 401; a token of another sector is 403 (without
saying which sector it belongs to). With mutual TLS, the client certificate's CN
must be the token's ``client_cert_cn``: token and certificate must agree.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas import Source
from schemas.report import SOURCE_SYSTEM_PATTERN

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MIN_TOKEN_LENGTH = 16  # `token-hash` refuses shorter tokens: easy to guess
_SYSTEM_ID = re.compile(SOURCE_SYSTEM_PATTERN)


class TokensError(ValueError):
    """The tokens file is missing or malformed; the message names the entry."""


class AuthError(Exception):
    """Authentication failed: ``status`` is 401 or 403, ``reason`` a short code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Credential:
    source_system: str
    source: Source
    token_sha256: bytes  # raw digest
    certificate_cn: str = ""  # the client certificate's CN under mutual TLS (default: source_system)


def token_hash(token: str) -> str:
    """The hex SHA-256 a tokens file stores for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(text: str, origin: str = "tokens file") -> tuple[Credential, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokensError(f"{origin}: not valid TOML: {exc}") from None
    systems = data.get("systems")
    if not isinstance(systems, dict):
        raise TokensError(f"{origin}: no [systems.<id>] tables")
    creds: list[Credential] = []
    seen: dict[str, str] = {}
    for system_id, entry in systems.items():
        where = f"{origin}: [systems.{system_id}]"
        if not _SYSTEM_ID.match(system_id):
            raise TokensError(f"{where}: the id must match {SOURCE_SYSTEM_PATTERN}")
        if not isinstance(entry, dict):
            raise TokensError(f"{where}: must be a table")
        unknown = set(entry) - {"source", "token_sha256", "description", "client_cert_cn"}
        if unknown:
            raise TokensError(f"{where}: unknown keys {sorted(unknown)}")
        try:
            source = Source(str(entry.get("source")))
        except ValueError:
            raise TokensError(f"{where}: source must be one of {[s.value for s in Source]}") from None
        digest = str(entry.get("token_sha256", "")).lower()
        if not _HEX64.match(digest):
            raise TokensError(f"{where}: token_sha256 must be 64 hex digits (see `cluebus adapter token-hash`)")
        if digest in seen:
            raise TokensError(f"{where}: the same token hash is also given to {seen[digest]}")
        seen[digest] = system_id
        cn = entry.get("client_cert_cn", system_id)
        if not isinstance(cn, str) or not 1 <= len(cn) <= 64:
            raise TokensError(f"{where}: client_cert_cn must be 1 to 64 characters")
        creds.append(Credential(system_id, source, bytes.fromhex(digest), cn))
    return tuple(creds)


class TokenStore:
    """Credentials from a tokens file, re-read when the file changes (checked every few seconds)."""

    def __init__(self, path: Path, *, check_interval_s: float = 5.0) -> None:
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._creds = self._load()
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size

    def _load(self) -> tuple[Credential, ...]:
        try:
            stamp = self._stamp()
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokensError(f"tokens file {self.path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TokensError(f"tokens file {self.path}: cannot read it ({type(exc).__name__})") from None
        creds = parse_tokens(text, str(self.path))
        self._stamp_seen = stamp
        return creds

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_interval_s:
            return
        with self._lock:
            if now - self._checked < self.check_interval_s:
                return
            self._checked = now
            try:
                if self._stamp() == self._stamp_seen:
                    return
                self._creds = self._load()
            except (TokensError, OSError):
                # A broken edit keeps the last good credentials; the operator sees it in
                # `cluebus adapter check-tokens` and in the log of the next start.
                return

    @property
    def credentials(self) -> tuple[Credential, ...]:
        self._maybe_reload()
        return self._creds

    def identify(self, token: str) -> Credential | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Credential | None = None
        for cred in self.credentials:  # compare with every entry: no early exit
            if hmac.compare_digest(digest, cred.token_sha256):
                found = cred
        return found

    def authenticate(self, authorization: str | None, source: Source) -> Credential:
        """The credential of a request for ``source``'s adapter, or :class:`AuthError`."""
        if not authorization:
            raise AuthError(401, "unauthorized", "missing 'Authorization: Bearer <token>' header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'")
        cred = self.identify(token)
        if cred is None:
            raise AuthError(401, "unauthorized", "unknown API token")
        if cred.source != source:
            # Not which sector the token belongs to: that would tell a stolen token's owner.
            raise AuthError(403, "forbidden", f"this token is not accepted by the {source.value} adapter")
        return cred
