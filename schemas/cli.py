"""`cluebus schemas ...`: publish the contracts."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("schemas")
def schemas_group() -> None:
    """Publish JSON Schema and AsyncAPI files for departmental systems."""


@schemas_group.command("export")
@click.argument("out_dir", type=click.Path(path_type=Path), required=False)
def export_command(out_dir: Path | None) -> None:
    """Write schemas/json/*.json and schemas/asyncapi.yaml (or into OUT_DIR)."""
    from schemas.export import HERE, export

    for path in export(out_dir or HERE):
        click.echo(path)


COMMANDS = [schemas_group]
