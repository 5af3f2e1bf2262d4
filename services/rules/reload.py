"""Hot reload of the routing rules: a bad file is rejected whole, the old rules keep working.

Reloads happen on SIGHUP and when the file's content changes (checked on a
timer). The outcome is exported like Alertmanager's
``alertmanager_config_last_reload_successful``.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from services.common.logging import get_logger
from services.rules.loader import CompiledRules, RulesError, load_rules

log = get_logger(__name__)


class RulesHolder:
    """Holds the current compiled rules of one service and swaps them atomically."""

    def __init__(self, path: Path | str, *, service: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.path = Path(path)
        self.service = service
        self.successful = Gauge(
            "cluebus_rules_last_reload_successful",
            "Whether the last attempt to load routing_rules.toml succeeded (1) or failed (0).",
            registry=registry,
        )
        self.success_time = Gauge(
            "cluebus_rules_last_reload_success_timestamp_seconds",
            "Time of the last successful load of routing_rules.toml.",
            registry=registry,
        )
        self.info = Gauge(
            "cluebus_rules_info", "The loaded rules version (value is always 1).", ["version"], registry=registry
        )
        self.current: CompiledRules = load_rules(self.path)  # a bad file at start-up is fatal
        self._digest = self.current.digest
        self._mark_success()

    def _mark_success(self) -> None:
        self.successful.set(1)
        self.success_time.set(time.time())
        self.info.clear()
        self.info.labels(version=self.current.version).set(1)

    def reload(self, *, reason: str = "signal") -> bool:
        """Load the file again. Returns True if new rules are in force."""
        try:
            new = load_rules(self.path)
        except RulesError as exc:
            self.successful.set(0)
            log.error(
                "rules reload failed; previous rules stay in force",
                reason=reason,
                problems=exc.lines()[:20],
                version=self.current.version,
            )
            return False
        except OSError as exc:
            self.successful.set(0)
            log.error(
                "rules reload failed; previous rules stay in force",
                reason=reason,
                error=type(exc).__name__,
                version=self.current.version,
            )
            return False
        self.current, self._digest = new, new.digest
        self._mark_success()
        log.info("rules reloaded", reason=reason, version=new.version)
        return True

    def reload_if_changed(self) -> bool:
        """Reload when the file's content differs from what was last loaded or tried."""
        try:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return False
        if digest == self._digest:
            return False
        self._digest = digest  # a broken file is tried once, not on every tick
        return self.reload(reason="file changed")
