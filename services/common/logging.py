"""structlog configuration shared by every service.

JSON lines when stdout is not a terminal, a readable console renderer when it
is. Context bound with ``structlog.contextvars`` (``report_id``,
``source_system``) is merged into every line. Personal data must never be
logged; as a second line of defence, values under keys that name a personal
field of the schemas are replaced before rendering.

Our own lines take structlog's native path straight to stdout: a line costs
~18 us instead of ~85 us through a stdlib ``LogRecord`` and formatter, which
matters on the adapter's and router's hot paths (one line per report). Lines
of client libraries (faust, aiokafka, kafka-python, uvicorn) come through
stdlib logging and the same processors. Level, renderer and stream are read
when a line is written, so loggers cached on first use follow a later
:func:`configure`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys that always carry personal content, whatever the schema says.
_ALWAYS_PERSONAL = frozenset(
    {
        "name",
        "phone",
        "id_number",
        "address",
        "narrative",
        "description",
        "reason",
        "outcome",
        "report",
        "body",
        "payload",
        "value",
        "subjects",
        "reporter",
        "anomaly",
    }
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


def scrub_personal(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace values of personal keys; the event text itself is a fixed string by convention."""
    banned = personal_keys()
    for key in list(event_dict):
        if key in banned:
            event_dict[key] = REDACTED
    return event_dict


_LEVELS = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
}


class _Output:
    """What :func:`configure` chose; read on every line."""

    level = logging.INFO
    renderer: Any = structlog.processors.JSONRenderer()


def _drop_below_level(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _LEVELS.get(method, logging.INFO) < _Output.level:
        raise structlog.DropEvent
    return event_dict


def _render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    return _Output.renderer(logger, method, event_dict)


class _StdoutLogger:
    """Writes each rendered line to the current ``sys.stdout`` and flushes it, like the
    stdlib handler does, so a line is out before a crash."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        out = sys.stdout
        with self._lock:
            out.write(message + "\n")
            out.flush()

    debug = info = warning = warn = error = critical = fatal = exception = log = msg


def _stdout_logger(*_args: Any) -> _StdoutLogger:
    return _STDOUT_LOGGER


_STDOUT_LOGGER = _StdoutLogger()


def configure(level: str = "info", fmt: str = "auto", service: str | None = None) -> None:
    """Configure structlog and route stdlib logging (faust, aiokafka, uvicorn) through it."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub_personal,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            _drop_below_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _render,
        ],
        logger_factory=_stdout_logger,
        # make_filtering_bound_logger gives exception() its exc_info; levels are filtered above.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
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
    root.setLevel(level.upper())  # raises on a bad level name
    _Output.level = root.level
    _Output.renderer = renderer
    # Client libraries are chatty at INFO; their warnings still come through.
    # At debug level their INFO lines (rebalances, recovery) are shown too.
    library_level = logging.INFO if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for noisy in ("kafka", "aiokafka", "faust", "mode", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(library_level)
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    """A logger of our own lines; ``name`` documents the caller (it is not rendered)."""
    return structlog.get_logger(name)
