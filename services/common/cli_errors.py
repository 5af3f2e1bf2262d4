"""One-line errors for every ``cluebus`` command: what to fix, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


class UserError(click.ClickException):
    """An error the user can fix; printed as one line."""

    def show(self, file: Any = None) -> None:
        click.echo(f"cluebus: error: {self.format_message()}", err=True)


def friendly(*extra: type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn configuration, connection and Kafka errors (and ``extra``) into one-line messages."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from kafka.errors import KafkaError

            from services.common.kafka import KafkaUnavailable

            try:
                return func(*args, **kwargs)
            except (KafkaUnavailable, ValueError, OSError, *extra) as exc:
                raise UserError(str(exc)) from None
            except KafkaError as exc:
                raise UserError(f"Kafka refused: {type(exc).__name__}: {exc}") from None

        return wrapper

    return decorate
