"""`cluebus adapter <source>` (the services), `cluebus adapter token-hash|check-tokens|receipt`,
and `cluebus send <source> FILE` (a small sample client)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from schemas import ENVELOPE_FIELDS, Source


@click.group("adapter")
def adapter_group() -> None:
    """Intake adapters: one HTTP service per reporting source."""


class _LogGuard:
    """A filter on the adapter's log handler.

    * Exception tracebacks from uvicorn lose their message: a message may quote submitted
      data (a ValidationError prints its input). The type and code locations stay; the
      app's own fault handler has logged the same, with the request path.
    * kafka-python logs every reconnect attempt while a broker is away; each message
      template passes once a minute (the relay's own lines say what matters).
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.last: dict[tuple[str, str], float] = {}

    def filter(self, record: Any) -> bool:
        if record.exc_info and record.name.startswith("uvicorn"):
            import traceback

            exc_type, _exc, tb = record.exc_info
            frames = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in traceback.extract_tb(tb)]
            record.msg = f"{record.getMessage()} {exc_type.__name__} at {' '.join(frames[-8:])}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            return True
        if not record.name.startswith("kafka"):
            return True
        import time

        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -self.interval_s) < self.interval_s:
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


def _run_adapter(source: Source, host: str | None, port: int | None) -> None:
    from services.adapters.app import create_app
    from services.adapters.runtime import AdapterRuntime, KafkaClients
    from services.adapters.server import serve, tls_context
    from services.adapters.settings import AdapterSettings
    from services.common import settings as cfg
    from services.common.logging import configure

    try:
        service = cfg.load(cfg.ServiceSettings)
        overrides: dict[str, Any] = {}
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        settings = cfg.load(AdapterSettings, **overrides)
        configure(service.log_level, service.log_format, service=f"adapter-{source.value}")
        import logging

        guard = _LogGuard()
        for handler in logging.getLogger().handlers:
            handler.addFilter(guard)
        runtime = AdapterRuntime(
            source,
            settings,
            kafka=KafkaClients(cfg.load(cfg.KafkaSettings), source, settings),
            topic_settings=cfg.load(cfg.TopicSettings),
            state_dir=service.state_dir,
        )
        app = create_app(runtime)
        tls_context(settings)  # a TLS misconfiguration is one line at start, like the rest
    except (ValueError, OSError) as exc:  # settings, tokens file, TLS files: one line, no traceback
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    serve(app, settings, app.state.adapter.metrics, settings.resolved_port(source), log_level=service.log_level)


def _make_source_command(source: Source) -> click.Command:
    @click.command(source.value, help=f"Run the {source.value} intake adapter (HTTP, outbox, relay).")
    @click.option("--host", default=None, help="Interface (default 127.0.0.1, CLUEBUS_ADAPTER_HOST).")
    @click.option("--port", type=int, default=None, help="Port (default per source, CLUEBUS_ADAPTER_PORT).")
    def command(host: str | None, port: int | None) -> None:
        _run_adapter(source, host, port)

    return command


for _source in Source:
    adapter_group.add_command(_make_source_command(_source))


@adapter_group.command("token-hash")
def token_hash_command() -> None:
    """Read a token from stdin; print the sha256 a tokens file stores for it."""
    from services.adapters.auth import MIN_TOKEN_LENGTH, token_hash

    token = sys.stdin.readline().strip()
    if not token:
        click.echo("cluebus: error: no token on stdin", err=True)
        sys.exit(1)
    if len(token) < MIN_TOKEN_LENGTH:
        click.echo(
            f"cluebus: error: the token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
            err=True,
        )
        sys.exit(1)
    click.echo(token_hash(token))


@adapter_group.command("dev-tls")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--system", "systems", multiple=True, help="A departmental system id to issue a client certificate for.")
@click.option("--client-ca-name", default=None, help="Also write the CA as this file name (the clients' CA).")
def dev_tls_command(folder: Path, systems: tuple[str, ...], client_ca_name: str | None) -> None:
    """Issue local-CA certificates for trying the adapters with TLS (never for production)."""
    import shutil

    from services.adapters.tls_dev import make_dev_tls
    from services.devkafka.local_ca import CAError

    try:
        tls = make_dev_tls(folder, systems)
        if client_ca_name:
            shutil.copyfile(tls.ca, tls.folder / Path(client_ca_name).name)
    except (CAError, OSError) as exc:
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    for key, value in tls.env(mutual=bool(systems)).items():
        click.echo(f"export {key}={value}")
    for system in systems:
        cert, key = tls.client(system)
        click.echo(f"# {system}: --cert {cert} --key {key} --cacert {tls.ca}")


@adapter_group.command("check-tokens")
@click.argument("file", type=click.Path(path_type=Path), required=False)
def check_tokens_command(file: Path | None) -> None:
    """Validate a tokens file and list its systems (ids and sources, never hashes)."""
    from services.adapters.auth import TokensError, parse_tokens
    from services.adapters.settings import AdapterSettings
    from services.common import settings as cfg

    path = file or cfg.load(AdapterSettings).tokens_file
    if path is None:
        click.echo("cluebus: error: name the file or set CLUEBUS_ADAPTER_TOKENS_FILE", err=True)
        sys.exit(1)
    try:
        creds = parse_tokens(Path(path).read_text(encoding="utf-8"), str(path))
    except (TokensError, OSError) as exc:
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    for cred in creds:
        click.echo(f"{cred.source.value:<10} {cred.source_system}")
    click.echo(f"{path}: {len(creds)} systems", err=True)


def _token(token: str | None) -> str:
    token = token or os.environ.get("CLUEBUS_SEND_TOKEN")
    if not token:
        click.echo("cluebus: error: give --token or set CLUEBUS_SEND_TOKEN", err=True)
        sys.exit(2)
    return token


def _default_url(source: Source) -> str:
    from services.adapters import DEFAULT_PORTS

    return f"https://localhost:{DEFAULT_PORTS[source]}"


def _tls_options(command: Any) -> Any:
    """--cacert, --cert and --key of the sample client (mutual TLS: --cert and --key)."""
    for option in (
        click.option("--key", type=click.Path(exists=True, dir_okay=False), default=None, help="Client key."),
        click.option("--cert", type=click.Path(exists=True, dir_okay=False), default=None, help="Client cert."),
        click.option(
            "--cacert",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            envvar="CLUEBUS_SEND_CACERT",
            help="CA of the adapter's certificate (or CLUEBUS_SEND_CACERT); default: the system's.",
        ),
    ):
        command = option(command)
    return command


def _verify(cacert: str | None, cert: str | None, key: str | None) -> Any:
    import ssl

    ctx = ssl.create_default_context(cafile=cacert)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def example_submission(source: Source, name: str | None = None) -> dict[str, Any]:
    """A bundled v1 example of ``source`` as a submission (envelope removed, fresh source_ref)."""
    from schemas.examples import load_examples
    from services.common.ids import uuid7

    examples = {k: v for k, v in load_examples("v1").items() if v.get("source") == source.value}
    if name is not None:
        key = name if name in examples else f"{source.value}-{name}"
        if key not in examples:
            raise click.BadParameter(f"no example {name!r}; choose from {', '.join(sorted(examples))}")
        data = examples[key]
    else:
        data = examples[sorted(examples)[0]]
    data = {k: v for k, v in data.items() if k not in ENVELOPE_FIELDS}
    data["source_ref"] = f"try-{uuid7()[:23]}"
    return data


@click.command("send")
@click.argument("source", type=click.Choice([s.value for s in Source]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--url", default=None, help="Adapter base URL (default https://localhost:<source port>).")
@click.option("--token", default=None, help="API token (or CLUEBUS_SEND_TOKEN).")
@click.option("--idempotency-key", default=None, help="Idempotency-Key header.")
@click.option(
    "--example",
    "example",
    is_flag=False,
    flag_value="",
    default=None,
    help="Post a bundled example of the source instead of FILE (optionally name one).",
)
@click.option(
    "--batch",
    "batch",
    is_flag=True,
    help="FILE is JSON lines (.jsonl/.ndjson) or CSV (.csv) for the batch endpoint.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True)
@_tls_options
def send_command(
    source: str,
    file: Path | None,
    url: str | None,
    token: str | None,
    idempotency_key: str | None,
    example: str | None,
    batch: bool,
    timeout: float,
    cacert: str | None,
    cert: str | None,
    key: str | None,
) -> None:
    """Post a report (JSON file or --example) to SOURCE's adapter and print the receipt."""
    import httpx

    src = Source(source)
    base = (url or _default_url(src)).rstrip("/")
    headers = {"Authorization": f"Bearer {_token(token)}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if example is not None:
        body = json.dumps(example_submission(src, example or None), ensure_ascii=False).encode()
        endpoint, headers["Content-Type"] = "/v1/reports", "application/json"
    elif file is None:
        raise click.UsageError("give a FILE or --example")
    elif batch:
        body = file.read_bytes()
        csv_like = file.suffix.lower() == ".csv"
        endpoint, headers["Content-Type"] = (
            "/v1/reports/batch",
            "text/csv" if csv_like else "application/x-ndjson",
        )
    else:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{file} is not a JSON file ({exc})") from None
        if isinstance(data, dict):
            stamped = [k for k in ENVELOPE_FIELDS if k in data]
            if stamped:
                click.echo(f"note: removed {', '.join(stamped)} (the adapter stamps them)", err=True)
                data = {k: v for k, v in data.items() if k not in ENVELOPE_FIELDS}
        body = json.dumps(data, ensure_ascii=False).encode()
        endpoint, headers["Content-Type"] = "/v1/reports", "application/json"
    try:
        response = httpx.post(
            base + endpoint, content=body, headers=headers, timeout=timeout, verify=_verify(cacert, cert, key)
        )
    except httpx.HTTPError as exc:
        click.echo(
            f"cluebus: error: cannot reach {base} ({type(exc).__name__}); is `cluebus adapter {source}` running?",
            err=True,
        )
        sys.exit(1)
    _print_response(response)


@adapter_group.command("receipt")
@click.argument("source", type=click.Choice([s.value for s in Source]))
@click.argument("report_id")
@click.option("--url", default=None)
@click.option("--token", default=None, help="API token (or CLUEBUS_SEND_TOKEN).")
@_tls_options
def receipt_command(
    source: str,
    report_id: str,
    url: str | None,
    token: str | None,
    cacert: str | None,
    cert: str | None,
    key: str | None,
) -> None:
    """Show a report's receipt and its status per department."""
    import httpx

    base = (url or _default_url(Source(source))).rstrip("/")
    try:
        response = httpx.get(
            f"{base}/v1/reports/{report_id}",
            headers={"Authorization": f"Bearer {_token(token)}"},
            timeout=30,
            verify=_verify(cacert, cert, key),
        )
    except httpx.HTTPError as exc:
        click.echo(f"cluebus: error: cannot reach {base} ({type(exc).__name__})", err=True)
        sys.exit(1)
    _print_response(response)


def _print_response(response: Any) -> None:
    try:
        shown = json.dumps(response.json(), ensure_ascii=False, indent=2)
    except ValueError:
        shown = response.text
    click.echo(f"HTTP {response.status_code}", err=True)
    click.echo(shown)
    if response.status_code >= 400:
        sys.exit(1)


COMMANDS = [adapter_group, send_command]
