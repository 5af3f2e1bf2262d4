"""SCRAM-SHA-512 credentials of the bus's principals, from secrets kept outside the repository.

Where a principal's password comes from, first match wins:

1. ``<secrets dir>/<principal>.password`` (e.g. ``dept-police.password``), the
   folder given by ``--secrets-dir`` or ``CLUEBUS_ACL_SECRETS_DIR``. The file
   must be readable by its owner only (mode 0600 or stricter), like an ssh key,
   and the folder must not be inside the git checkout (``.run/`` excepted,
   which is ignored by git).
2. the environment variable ``CLUEBUS_ACL_PASSWORD_<PRINCIPAL>``, the principal
   in capitals with ``-`` as ``_`` (e.g. ``CLUEBUS_ACL_PASSWORD_DEPT_POLICE``).

Passwords are never printed. ``--generate-missing`` writes a random password
(0600) into the secrets folder for every principal without one; the same file
is then what the service's ``CLUEBUS_KAFKA_PASSWORD_FILE`` points to.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka.admin import (
    KafkaAdminClient,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from services.acl.model import ADMIN, CLUEBUS_PRINCIPAL

SECRETS_DIR_ENV = "CLUEBUS_ACL_SECRETS_DIR"
PASSWORD_ENV_PREFIX = "CLUEBUS_ACL_PASSWORD_"  # noqa: S105 - a variable name, not a secret
ITERATIONS = 8192  # PBKDF2 rounds; Kafka accepts 4096 to 16384 for SCRAM-SHA-512
MIN_PASSWORD_LENGTH = 16
REPO_ROOT = Path(__file__).resolve().parents[2]


class SecretError(ValueError):
    """A secret is missing, unsafe or unreadable (the message never contains a secret)."""


def env_name(principal: str) -> str:
    return PASSWORD_ENV_PREFIX + principal.upper().replace("-", "_")


def check_secrets_dir(path: Path) -> Path:
    """Refuse a secrets folder inside the checkout (where it could be committed)."""
    resolved = Path(path).resolve()
    repo = REPO_ROOT.resolve()
    if resolved.is_relative_to(repo) and not resolved.is_relative_to(repo / ".run"):
        raise SecretError(
            f"secrets folder {path} is inside the repository; keep secrets outside it "
            f"(or under the git-ignored {repo / '.run'})"
        )
    return resolved


def _read_password_file(path: Path, principal: str) -> str:
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise SecretError(f"{path} (password of {principal}) is readable by others; chmod 600 it")
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_PASSWORD_LENGTH:
        raise SecretError(f"the password of {principal} in {path} is shorter than {MIN_PASSWORD_LENGTH} characters")
    return value


@dataclass
class SecretSource:
    """Finds principals' passwords in a folder and the environment."""

    directory: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        if self.directory is None and self.environ.get(SECRETS_DIR_ENV):
            self.directory = Path(self.environ[SECRETS_DIR_ENV])
        if self.directory is not None:
            self.directory = check_secrets_dir(self.directory)

    def file_for(self, principal: str) -> Path | None:
        return self.directory / f"{principal}.password" if self.directory else None

    def password(self, principal: str) -> str | None:
        path = self.file_for(principal)
        if path is not None and path.exists():
            return _read_password_file(path, principal)
        value = self.environ.get(env_name(principal))
        if value is not None:
            value = value.strip()
            if len(value) < MIN_PASSWORD_LENGTH:
                raise SecretError(f"{env_name(principal)} is shorter than {MIN_PASSWORD_LENGTH} characters")
            return value
        return None

    def generate(self, principal: str) -> Path:
        """Write a new random password for the principal (0600) and return its file."""
        path = self.file_for(principal)
        if path is None:
            raise SecretError("--generate-missing needs a secrets folder (--secrets-dir)")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        return path


@dataclass
class UsersResult:
    set: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def resolve_passwords(
    principals: Iterable[str], source: SecretSource, *, generate_missing: bool = False
) -> tuple[dict[str, str], UsersResult]:
    """Each principal's password, generating the missing ones if asked."""
    result = UsersResult()
    found: dict[str, str] = {}
    for principal in sorted(set(principals)):
        if principal == ADMIN:
            raise SecretError("the admin's credential is set when the broker is formatted")
        password = source.password(principal)
        if password is None and generate_missing:
            source.generate(principal)
            result.generated.append(principal)
            password = source.password(principal)
        if password is None:
            result.missing.append(principal)
        else:
            found[principal] = password
    return found, result


def set_credentials(admin: KafkaAdminClient, passwords: Mapping[str, str], result: UsersResult) -> UsersResult:
    """Create or replace each principal's SCRAM-SHA-512 credential."""
    if passwords:
        upserts = [
            UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, pw, iterations=ITERATIONS)
            for user, pw in sorted(passwords.items())
        ]
        try:
            errors = admin.alter_user_scram_credentials(upserts)
        except KafkaError as exc:
            raise SecretError(f"cannot set SCRAM credentials: {type(exc).__name__}") from None
        failed = {u: e for u, e in errors.items() if e}
        if failed:
            raise SecretError("SCRAM credentials refused: " + "; ".join(f"{u}: {e}" for u, e in sorted(failed.items())))
        _wait_for_users(admin, sorted(passwords))
        result.set.extend(sorted(passwords))
    return result


def _wait_for_users(admin: KafkaAdminClient, users: list[str], timeout_s: float = 15.0) -> None:
    """Credentials reach the broker through the metadata log; wait until it knows every user."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            described = admin.describe_user_scram_credentials(users)
        except KafkaError:
            described = {}
        missing = [
            u
            for u in users
            if not any(
                c["mechanism"] == ScramMechanism.SCRAM_SHA_512 for c in described.get(u, {}).get("credential_infos", [])
            )
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SecretError(f"the broker does not show credentials for {', '.join(missing)} after {timeout_s:.0f}s")
        time.sleep(0.2)


def prune_credentials(admin: KafkaAdminClient, keep: Iterable[str], result: UsersResult) -> UsersResult:
    """Delete the SCRAM credentials of cluebus-named principals that are no longer derived."""
    keep = set(keep)
    try:
        described = admin.describe_user_scram_credentials()
    except KafkaError as exc:
        raise SecretError(f"cannot list SCRAM credentials: {type(exc).__name__}") from None
    deletions = []
    for user, info in sorted(described.items()):
        if user in keep or user == ADMIN or not CLUEBUS_PRINCIPAL.match(f"User:{user}"):
            continue
        for cred in info.get("credential_infos", []):
            deletions.append(UserScramCredentialDeletion(user, cred["mechanism"]))
        result.deleted.append(user)
    if deletions:
        errors = admin.alter_user_scram_credentials(deletions)
        failed = {u: e for u, e in errors.items() if e}
        if failed:
            raise SecretError(
                "SCRAM credentials not deleted: " + "; ".join(f"{u}: {e}" for u, e in sorted(failed.items()))
            )
    return result
