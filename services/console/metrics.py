"""Prometheus metrics of the console, in its own registry. Labels: bounded codes only, never ids or names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.common.metrics import PREFIX, build_info

SIGN_IN_FAILURES = ("bad_credentials", "locked", "rate_limited", "csrf")
ACTIONS = ("accept", "decline", "complete")


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.sign_ins = Counter(
            f"{PREFIX}_console_sign_ins", "Successful sign-ins, by user role.", ["role"], registry=r
        )
        self.sign_in_failures = Counter(
            f"{PREFIX}_console_sign_in_failures",
            "Refused sign-ins, by reason (bad_credentials, locked, rate_limited, csrf).",
            ["reason"],
            registry=r,
        )
        self.lockouts = Counter(f"{PREFIX}_console_lockouts", "Accounts locked after repeated failures.", registry=r)
        self.actions = Counter(
            f"{PREFIX}_console_actions",
            "Actions on referrals, by kind and outcome (done, refused).",
            ["department", "action", "outcome"],
            registry=r,
        )
        self.openings = Counter(
            f"{PREFIX}_console_referral_openings",
            "Referral pages shown (each writes an access record).",
            ["department"],
            registry=r,
        )
        self.denied = Counter(
            f"{PREFIX}_console_denied_requests",
            "Requests refused: another department's referral, a role's page, a missing CSRF token.",
            ["reason"],
            registry=r,
        )
        self.sessions = Gauge(f"{PREFIX}_console_sessions_active", "Sessions in use.", registry=r)
        for reason in SIGN_IN_FAILURES:
            self.sign_in_failures.labels(reason=reason)
        build_info("console", registry=r)
