"""The console's users file: staff id, department, role, scrypt password hash, disabled flag.

A TOML file managed by ``cluebus console user add|disable|passwd`` and written
atomically with mode 0600; the running console reads it again when it changes,
so a disabled user or a changed password ends that user's sessions at their
next request. Passwords are hashed with scrypt (N=2^15, r=8, p=1: 32 MiB and
~0.1 s per hash measured on this project's 2-core machine) and never stored,
printed or logged in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import tomli_w

from schemas.events import STAFF_ID

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD_LENGTH = 12


class ConsoleRole(StrEnum):
    staff = "staff"  # works the department's referrals
    supervisor = "supervisor"  # and sees its overdue referrals and the escalations addressed to it
    joint_meeting = "joint_meeting"  # the joint meeting office: every department's counts, no content
    admin = "admin"  # the console's own health; no referral content


class UsersError(ValueError):
    """A users file or a change to it is invalid; the message says what to fix (never a password)."""


@dataclass(frozen=True)
class User:
    username: str
    department: str
    role: ConsoleRole
    password_hash: str
    disabled: bool = False
    changed_at: str = ""  # when the password last changed: sessions from before it end

    @property
    def works_referrals(self) -> bool:
        return self.role in (ConsoleRole.staff, ConsoleRole.supervisor, ConsoleRole.joint_meeting)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# An unknown user is checked against this, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 86 + "=="


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 64) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 2**20, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if username.lower() in password.lower():
        raise UsersError("a password must not contain the user name")


class UsersFile:
    """The users file on disk. ``current()`` re-reads it when its modification time changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------------
    def load(self) -> dict[str, User]:
        if not self.path.exists():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UsersError(f"{self.path}: not valid TOML: {exc}") from None
        users: dict[str, User] = {}
        for name, entry in (data.get("users") or {}).items():
            where = f"{self.path}: users.{name}"
            if not re.fullmatch(STAFF_ID, name):
                raise UsersError(f"{where}: not a staff id")
            try:
                users[name] = User(
                    username=name,
                    department=str(entry["department"]),
                    role=ConsoleRole(entry["role"]),
                    password_hash=str(entry["password"]),
                    disabled=bool(entry.get("disabled", False)),
                    changed_at=str(entry.get("changed_at", "")),
                )
            except KeyError as exc:
                raise UsersError(f"{where}: missing {exc.args[0]}") from None
            except ValueError:
                raise UsersError(f"{where}: role must be one of {', '.join(r.value for r in ConsoleRole)}") from None
        return users

    def current(self) -> dict[str, User]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._users = self.load()
                self._stamp = stamp
            return self._users

    def get(self, username: str) -> User | None:
        return self.current().get(username)

    # --- changing (the CLI) --------------------------------------------------------------------
    def add(self, username: str, department: str, role: ConsoleRole | str, password: str) -> User:
        users = self.load()
        if not re.fullmatch(STAFF_ID, username):
            raise UsersError(f"{username!r} is not a staff id (letters, digits, . _ @ -; at most 64)")
        if username in users:
            raise UsersError(f"user {username} exists; use `passwd` or `disable`")
        role = _role(role)
        if role is ConsoleRole.joint_meeting and department != "joint_meeting":
            raise UsersError("the joint_meeting role belongs to the joint_meeting department")
        check_password_strength(password, username)
        user = User(username, department, role, hash_password(password), changed_at=_now())
        users[username] = user
        self._save(users)
        return user

    def disable(self, username: str) -> User:
        users = self.load()
        user = self._existing(users, username)
        users[username] = replace(user, disabled=True)
        self._save(users)
        return users[username]

    def passwd(self, username: str, password: str) -> User:
        """A new password; re-enables a disabled account (its sessions ended when it was disabled)."""
        users = self.load()
        user = self._existing(users, username)
        check_password_strength(password, username)
        users[username] = replace(user, password_hash=hash_password(password), disabled=False, changed_at=_now())
        self._save(users)
        return users[username]

    @staticmethod
    def _existing(users: dict[str, User], username: str) -> User:
        if username not in users:
            raise UsersError(f"no user {username}")
        return users[username]

    def _save(self, users: dict[str, User]) -> None:
        data = {
            "users": {
                u.username: {
                    "department": u.department,
                    "role": u.role.value,
                    "password": u.password_hash,
                    "disabled": u.disabled,
                    "changed_at": u.changed_at,
                }
                for u in sorted(users.values(), key=lambda u: u.username)
            }
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# cluebus console users: `cluebus console user add|disable|passwd`; scrypt hashes only\n")
            fh.write(tomli_w.dumps(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def authenticate(users: dict[str, User], username: str, password: str) -> User | None:
    """The user when the password is right and the account enabled; equal work for an unknown name."""
    user = users.get(username)
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    return user if ok and user is not None and not user.disabled else None


def _role(role: ConsoleRole | str) -> ConsoleRole:
    try:
        return ConsoleRole(role)
    except ValueError:
        raise UsersError(f"role must be one of {', '.join(r.value for r in ConsoleRole)}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
