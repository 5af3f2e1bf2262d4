"""Running a cluebus faust app as a process: cluebus's logging, no banner, a task dump on SIGUSR2."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from services.common.logging import get_logger

log = get_logger(__name__)


class BusWorker(faust.Worker):
    """A faust worker that logs through cluebus's structlog setup, without the banner."""

    def __init__(self, app: faust.App, *, service: str, log_level: str, log_format: str) -> None:
        self._cluebus_logging = (log_level, log_format, service)
        super().__init__(app, quiet=True, redirect_stdouts=False, loglevel=log_level)
        self.spinner = None  # the terminal spinner writes escape codes into log files

    def _setup_logging(self) -> None:
        from services.common.logging import configure

        level, fmt, service = self._cluebus_logging
        configure(level=level, fmt=fmt, service=service)

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        import signal

        self.loop.add_signal_handler(signal.SIGUSR2, dump_tasks)


def dump_tasks() -> None:
    """Log every asyncio task's full await chain (SIGUSR2): what a stuck worker waits on."""
    for task in asyncio.all_tasks():
        frames = []
        awaitable: Any = task.get_coro()
        for _ in range(60):
            frame = (
                getattr(awaitable, "cr_frame", None)
                or getattr(awaitable, "ag_frame", None)
                or getattr(awaitable, "gi_frame", None)
            )
            if frame is not None:
                frames.append(
                    f"{frame.f_code.co_filename.rsplit('site-packages/', 1)[-1]}:{frame.f_lineno} "
                    f"{frame.f_code.co_name}"
                )
            nxt = (
                getattr(awaitable, "cr_await", None)
                or getattr(awaitable, "ag_await", None)
                or getattr(awaitable, "gi_yieldfrom", None)
            )
            if nxt is None:
                break
            awaitable = nxt
        log.warning("asyncio task", task=task.get_name(), frames=frames, waiting_on=repr(awaitable)[:200])


def run_worker(app: faust.App, *, service: str, log_level: str = "info", log_format: str = "auto") -> None:
    """Run a faust app until SIGTERM/SIGINT (blocks; exits the process)."""
    BusWorker(app, service=service, log_level=log_level, log_format=log_format).execute_from_commandline()
