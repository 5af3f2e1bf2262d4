"""structlog configuration shared by every service.

JSON lines when stdout is not a terminal, a readable console renderer when it
is. Context bound with ``structlog.contextvars`` (``report_id``,
``source_system``) is merged into every line. Personal data must never be
logged; as a second line of defence, values under keys that name a personal
field of the schemas are replaced before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys that always carry personal content, whatever the schema says.
_ALWAYS_PERSONAL = frozenset(
    {"name", "phone", "id_number", "address", "narrative", "description", "reason", "outcome",
     "report", "body", "payload", "value", "subjects", "reporter", "anomaly"}
)


@lru_cache(maxsize=1)
def personal_keys() -> frozenset[str]:
    """Leaf names of every field the schemas mark as sensitive."""
    keys = set(_ALWAYS_PERSONAL)
    try:
        from schemas import REPORT_MODELS, sensitive_fields
    except ImportError:  # schemas package not importable: keep the static set
        return frozenset(keys)
    for model in REPORT_MODELS.values():
        keys.update(path.rsplit(".", 1)[-1] for path in sensitive_fields(model))
    return frozenset(keys)


def scrub_personal(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values of personal keys; the event text itself is a fixed string by convention."""
    banned = personal_keys()
    for key in list(event_dict):
        if key in banned:
            event_dict[key] = REDACTED
    return event_dict


def configure(level: str = "info", fmt: str = "auto", service: str | None = None) -> None:
    """Configure structlog and route stdlib logging (faust, aiokafka, uvicorn) through it."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub_personal,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO; their warnings still come through.
    # At debug level their INFO lines (rebalances, recovery) are shown too.
    library_level = logging.INFO if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for noisy in ("kafka", "aiokafka", "faust", "mode", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(library_level)
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
