"""Publish the contracts: JSON Schema per model and an AsyncAPI 3.0 document of the bus.

Departmental systems that are not written in Python build against these files.
The output is deterministic, so a test can regenerate it and compare.

    python -m schemas.export [out_dir]      # or: cluebus schemas export
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.enums import Source
from schemas.events import EVENT_MODELS
from schemas.sources import REPORT_MODELS, SUBMISSION_MODELS, Report
from services.common.topics import TopicNames

HERE = Path(__file__).resolve().parent
JSON_DIR = "json"
ASYNCAPI = "asyncapi.yaml"


def _schema_files() -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for source in Source:
        files[f"{source.value}-submission"] = SUBMISSION_MODELS[source].model_json_schema()
        files[f"{source.value}-report"] = REPORT_MODELS[source].model_json_schema()
    files["report"] = TypeAdapter(Report).json_schema()
    for name, model in EVENT_MODELS.items():
        files[_kebab(name)] = model.model_json_schema()
    for name, schema in files.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://cluebus.invalid/schemas/{name}.json"
    return files


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _asyncapi() -> dict[str, Any]:
    t = TopicNames("cluebus")
    key = {
        "type": "string",
        "description": "report_id (UUIDv7); every per-report topic is keyed by it",
    }
    original_key = {
        "type": "string",
        "description": "the key of the unprocessable record (its report_id when it had one)",
    }

    def message(name: str, schema_file: str, summary: str, kafka_key: dict[str, Any] = key) -> dict[str, Any]:
        return {
            "name": name,
            "summary": summary,
            "contentType": "application/json",
            "bindings": {"kafka": {"key": kafka_key, "bindingVersion": "0.5.0"}},
            "payload": {
                "schemaFormat": "application/schema+json;version=draft-2020-12",
                "schema": {"$ref": f"./{JSON_DIR}/{schema_file}.json"},
            },
        }

    messages = {
        f"{s.value}Report": message(f"{s.value}Report", f"{s.value}-report", f"A report from the {s.value} sector")
        for s in Source
    }
    messages.update(
        {
            "Referral": message(
                "Referral",
                "referral",
                "A report forwarded to one department, reduced to its fields",
            ),
            "RoutingDecision": message(
                "RoutingDecision",
                "routing-decision",
                "Audit record of one routing (no personal values)",
            ),
            "ReportStatus": message(
                "ReportStatus",
                "report-status",
                "Status per department, for feedback to the reporter",
            ),
            "DeadLetter": message("DeadLetter", "dead-letter", "An event that could not be processed", original_key),
            "Ack": message("Ack", "ack", "A department's acknowledgement of a referral"),
            "Escalation": message(
                "Escalation",
                "escalation",
                "An overdue or declined referral raised to the next level",
            ),
            "AccessEvent": message(
                "AccessEvent",
                "access-event",
                "A person opened a referral's personal data (who, which field groups, when; no values)",
            ),
            "Tick": message("Tick", "tick", "Internal: the tracker's clock asks its agent to re-check a report"),
        }
    )

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/messages/{name}"}

    channels: dict[str, Any] = {}
    for s in Source:
        channels[f"reports-{s.value}"] = {
            "address": t.report(s.value),
            "messages": {f"{s.value}Report": ref(f"{s.value}Report")},
        }
    channels["referrals"] = {
        "address": t.referral("{department}"),
        "parameters": {"department": {"description": "Department id from routing_rules.toml (police, education, ...)"}},
        "messages": {"Referral": ref("Referral")},
    }
    for cid, address, msg in [
        ("decisions", t.decisions, "RoutingDecision"),
        ("status", t.status, "ReportStatus"),
        ("deadletter", t.deadletter, "DeadLetter"),
        ("acks", t.acks, "Ack"),
        ("escalations", t.escalations, "Escalation"),
        ("access-audit", t.access_audit, "AccessEvent"),
        ("tracker-ticks", t.tracker_ticks, "Tick"),
    ]:
        channels[cid] = {"address": address, "messages": {msg: ref(msg)}}

    def op(action: str, channel: str, service: str, msgs: list[str], note: str = "") -> dict[str, Any]:
        verb = "sends to" if action == "send" else "receives from"
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{service} {verb} {channel}" + (f" ({note})" if note else ""),
            "x-cluebus-service": service,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in msgs],
        }

    operations: dict[str, Any] = {}
    for s in Source:
        operations[f"adapter-{s.value}.sendReport"] = op(
            "send", f"reports-{s.value}", f"adapter-{s.value}", [f"{s.value}Report"]
        )
        operations[f"router.receiveReport.{s.value}"] = op(
            "receive", f"reports-{s.value}", "router", [f"{s.value}Report"]
        )
        operations[f"reconciler.receiveReport.{s.value}"] = op(
            "receive", f"reports-{s.value}", "reconciler", [f"{s.value}Report"], "published vs decided"
        )
        operations[f"reconciler.sendReport.{s.value}"] = op(
            "send", f"reports-{s.value}", "reconciler", [f"{s.value}Report"], "re-drive an unrouted report"
        )
    operations.update(
        {
            "router.sendReferral": op("send", "referrals", "router", ["Referral"], "one topic per department"),
            "router.sendDecision": op("send", "decisions", "router", ["RoutingDecision"]),
            "router.sendDeadLetter": op("send", "deadletter", "router", ["DeadLetter"]),
            "inbox.receiveReferral": op(
                "receive",
                "referrals",
                "inbox",
                ["Referral"],
                "each department reads only its own topic",
            ),
            "inbox.sendAck": op("send", "acks", "inbox", ["Ack"]),
            "inbox.receiveEscalation": op(
                "receive",
                "escalations",
                "inbox",
                ["Escalation"],
                "department supervisors and the joint meeting office",
            ),
            "inbox.sendAccessEvent": op("send", "access-audit", "inbox", ["AccessEvent"], "`inbox show`"),
            "console.sendAccessEvent": op("send", "access-audit", "console", ["AccessEvent"], "a referral page"),
            "console.receiveReferral": op(
                "receive", "referrals", "console", ["Referral"], "under each department's own principal"
            ),
            "console.receiveStatus": op("receive", "status", "console", ["ReportStatus"], "joint meeting counts"),
            "console.sendAck": op("send", "acks", "console", ["Ack"], "as the department's inbox"),
            "console.receiveEscalation": op(
                "receive", "escalations", "console", ["Escalation"], "supervisors and the joint meeting office"
            ),
            "audit.receiveAccessEvent": op(
                "receive", "access-audit", "audit", ["AccessEvent"], "`cluebus audit`, with the decisions"
            ),
            "audit.receiveDecision": op("receive", "decisions", "audit", ["RoutingDecision"], "`cluebus audit`"),
            "tracker.receiveDecision": op("receive", "decisions", "tracker", ["RoutingDecision"]),
            "tracker.receiveAck": op("receive", "acks", "tracker", ["Ack"]),
            "tracker.receiveTick": op("receive", "tracker-ticks", "tracker", ["Tick"]),
            "tracker.sendTick": op("send", "tracker-ticks", "tracker", ["Tick"]),
            "tracker.sendEscalation": op("send", "escalations", "tracker", ["Escalation"]),
            "tracker.sendStatus": op(
                "send", "status", "tracker", ["ReportStatus"], "the only writer; seq 0 at the decision"
            ),
            "reconciler.receiveDecision": op("receive", "decisions", "reconciler", ["RoutingDecision"]),
            "reconciler.sendDecision": op(
                "send", "decisions", "reconciler", ["RoutingDecision"], "re-drive a decision the tracker never took in"
            ),
            "reconciler.receiveStatus": op("receive", "status", "reconciler", ["ReportStatus"], "decided vs tracked"),
            "reconciler.receiveDeadLetter": op("receive", "deadletter", "reconciler", ["DeadLetter"]),
            "tracker.sendDeadLetter": op("send", "deadletter", "tracker", ["DeadLetter"]),
            "adapters.receiveStatus": op("receive", "status", "adapters", ["ReportStatus"], "feedback to reporters"),
            "operators.receiveDeadLetter": op(
                "receive",
                "deadletter",
                "operators",
                ["DeadLetter"],
                "`cluebus deadletters` shows ids only",
            ),
        }
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "cluebus",
            "version": "1.0.0",
            "description": "Interagency referral bus for mandatory reports of trafficking "
            "and harm to minors. Topic names shown with the default prefix 'cluebus'. "
            "Fields marked x-cluebus-sensitivity hold personal data; DNA and biometric "
            "data are never sent (police only).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> dict[str, str]:
    """Relative path -> file text of every published contract."""
    import yaml

    out = {
        f"{JSON_DIR}/{name}.json": json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, schema in sorted(_schema_files().items())
    }
    out[ASYNCAPI] = "# Generated by `cluebus schemas export`; do not edit.\n" + yaml.safe_dump(
        _asyncapi(), sort_keys=True, allow_unicode=True, width=100
    )
    return out


def export(out_dir: Path | str = HERE) -> list[Path]:
    """Write ``json/<name>.json`` and ``asyncapi.yaml`` under ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    written = []
    rendered = render()
    (out_dir / JSON_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / JSON_DIR).glob("*.json"):
        if f"{JSON_DIR}/{stale.name}" not in rendered:
            stale.unlink()
    for rel, text in rendered.items():
        path = out_dir / rel
        path.write_bytes(text.encode("utf-8"))  # no newline translation: byte-identical everywhere
        written.append(path)
    return written


def models_by_file() -> dict[str, type[BaseModel] | TypeAdapter[Any]]:
    """Which model each JSON Schema file describes (for tests)."""
    out: dict[str, Any] = {}
    for source in Source:
        out[f"{source.value}-submission"] = SUBMISSION_MODELS[source]
        out[f"{source.value}-report"] = REPORT_MODELS[source]
    out["report"] = TypeAdapter(Report)
    for name, model in EVENT_MODELS.items():
        out[_kebab(name)] = model
    return out


if __name__ == "__main__":  # pragma: no cover
    for p in export(sys.argv[1] if len(sys.argv) > 1 else HERE):
        print(p)
