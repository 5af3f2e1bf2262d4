"""Sessions, CSRF tokens and sign-in throttling of the console (pure state; the clock is passed in).

* A session is a random 256-bit token in a ``__Host-`` cookie (HttpOnly, Secure,
  SameSite=Strict, Path=/); the server keeps only its SHA-256, with the user, a
  CSRF token, and the times that end it: ``idle_timeout_s`` without a request,
  ``session_max_s`` after sign-in, the user disabled or their password changed.
  Sessions live in the process: a restart signs everyone out.
* Every form carries the session's CSRF token (the sign-in form a pre-session
  token from its own ``__Host-`` cookie); a POST without the right one is refused.
* Sign-in failures lock an account after ``lockout_failures`` in a row for
  ``lockout_s`` (a right password does not open a locked account), and an
  address that fails ``address_failures`` times within ``lockout_s`` must wait.
  The answer to a bad password, an unknown user and a disabled account is the same.

Pages are served from a thread pool, so both stores take a lock around each change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field

SESSION_COOKIE = "__Host-cluebus-session"
LOGIN_COOKIE = "__Host-cluebus-signin"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_equal(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    username: str
    department: str
    role: str
    csrf: str
    password_changed_at: str
    started: float
    last_seen: float


@dataclass
class SessionStore:
    idle_timeout_s: float
    max_age_s: float
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def create(self, username: str, department: str, role: str, password_changed_at: str, now: float) -> str:
        """A new session (a new token at every sign-in: no fixation); returns the cookie value."""
        token = new_token()
        session = Session(username, department, role, new_token(), password_changed_at, started=now, last_seen=now)
        with self._lock:
            self._prune(now)
            self._sessions[_digest(token)] = session
        return token

    def _prune(self, now: float) -> None:
        dead = [k for k, s in self._sessions.items() if self._why_ended(s, now)]
        for k in dead:
            del self._sessions[k]

    def _why_ended(self, session: Session, now: float) -> str | None:
        if now - session.last_seen > self.idle_timeout_s:
            return "idle"
        if now - session.started > self.max_age_s:
            return "expired"
        return None

    def get(self, token: str | None, now: float) -> tuple[Session | None, str | None]:
        """The live session of a cookie and refreshes its idle clock; else (None, why it ended)."""
        if not token:
            return None, None
        key = _digest(token)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None, "unknown"
            why = self._why_ended(session, now)
            if why is not None:
                del self._sessions[key]
                return None, why
            session.last_seen = now
            return session, None

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def end_user(self, username: str) -> int:
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.username == username]
            for k in keys:
                del self._sessions[k]
        return len(keys)

    def active(self, now: float) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if self._why_ended(s, now) is None)


@dataclass
class SignInThrottle:
    """Failures per account (locks it) and per client address (slows it); both forget after ``lockout_s``."""

    lockout_failures: int
    lockout_s: float
    address_failures: int
    _accounts: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (failures in a row, last)
    _locked_until: dict[str, float] = field(default_factory=dict)
    _addresses: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    max_tracked: int = 10_000  # names and addresses remembered at most (typed names are unbounded input)

    def refusal(self, username: str, address: str, now: float) -> str | None:
        """``locked`` or ``rate_limited`` when this attempt must not even be checked; else None."""
        with self._lock:
            recent = [t for t in self._addresses.get(address, []) if now - t < self.lockout_s]
            if recent:
                self._addresses[address] = recent
            else:
                self._addresses.pop(address, None)
            if len(recent) >= self.address_failures:
                return "rate_limited"
            if self._locked_until.get(username, 0.0) > now:
                return "locked"
            return None

    def failed(self, username: str, address: str, now: float) -> bool:
        """Count a failure; True when it locked the account."""
        with self._lock:
            if len(self._accounts) + len(self._addresses) + len(self._locked_until) > self.max_tracked:
                self._forget(now)
            self._addresses.setdefault(address, []).append(now)
            count, last = self._accounts.get(username, (0, now))
            count = count + 1 if now - last < self.lockout_s else 1
            self._accounts[username] = (count, now)
            if count >= self.lockout_failures:
                self._locked_until[username] = now + self.lockout_s
                self._accounts.pop(username, None)
                return True
            return False

    def _forget(self, now: float) -> None:
        """Drop what no longer counts: failures and locks older than ``lockout_s``."""
        self._accounts = {k: v for k, v in self._accounts.items() if now - v[1] < self.lockout_s}
        self._locked_until = {k: v for k, v in self._locked_until.items() if v > now}
        self._addresses = {
            k: r for k, v in self._addresses.items() if (r := [t for t in v if now - t < self.lockout_s])
        }

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._accounts.pop(username, None)

    def retry_after(self, username: str, address: str, now: float) -> int:
        with self._lock:
            until = self._locked_until.get(username, 0.0)
            oldest = min(self._addresses.get(address, [now]), default=now)
        return max(1, int(max(until - now, oldest + self.lockout_s - now)))
