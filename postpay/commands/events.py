"""``postpay events schema``: the JSON Schema of every event, for producers outside postpay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.events import EVENT_TYPES, Envelope

events_app = typer.Typer(help="The events postpay publishes and consumes.", no_args_is_help=True)


def event_schemas() -> dict[str, dict[str, Any]]:
    """One complete schema per event type: the envelope with that event's payload."""
    schemas = {}
    for event_class in EVENT_TYPES.all():
        schema = Envelope[event_class].model_json_schema()  # type: ignore[valid-type]
        schema["title"] = event_class.event_type
        schema["description"] = (event_class.__doc__ or "").strip()
        properties = schema["properties"]
        properties["event_type"] = {"const": event_class.event_type, "title": "Event Type", "type": "string"}
        properties["schema_version"] = {
            "const": event_class.schema_version,
            "title": "Schema Version",
            "type": "integer",
        }
        schemas[event_class.event_type] = schema
    return schemas


@events_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory for one <Event>.schema.json per event.")
    ] = None,
) -> None:
    """Write the JSON Schema of every event (to a directory, or all of them to stdout)."""
    schemas = event_schemas()
    if output is None:
        typer.echo(json.dumps(schemas, indent=2, sort_keys=True))
        return
    output.mkdir(parents=True, exist_ok=True)
    for event_type, document in schemas.items():
        (output / f"{event_type}.schema.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {len(schemas)} schemas to {output}")


@events_app.command("list")
def list_events() -> None:
    """Every event type with its schema version, who may publish it, and what it says."""
    for event_class in EVENT_TYPES.all():
        summary = (event_class.__doc__ or "").strip().splitlines()[0] if event_class.__doc__ else ""
        producers = ", ".join(event_class.producers)
        typer.echo(f"{event_class.event_type:32} v{event_class.schema_version}  {producers:20}  {summary}")


def producers_table() -> str:
    """Markdown: each event type and who may publish it (docs/security.md carries it)."""
    rows = ["| event | may be published by |", "|---|---|"]
    rows += [
        f"| `{event_class.event_type}` | {', '.join(event_class.producers)} |"
        for event_class in EVENT_TYPES.all()
        if event_class.__module__.startswith("shared.events.")
    ]  # not a test's own events
    return "\n".join(rows)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
