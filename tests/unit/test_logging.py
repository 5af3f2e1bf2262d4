import json
import logging

import structlog

from services.common import logging as buslog


def test_personal_values_are_replaced_and_ids_kept(capsys):
    buslog.configure(level="info", fmt="json", service="test")
    log = buslog.get_logger("t")
    log.info("report accepted", report_id="r-1", name="张三", phone="13800000000", count=3)
    logging.getLogger("faust").warning("from stdlib %s", "ok")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    first = lines[0]
    assert first["report_id"] == "r-1" and first["count"] == 3 and first["service"] == "test"
    assert first["name"] == buslog.REDACTED and first["phone"] == buslog.REDACTED
    assert "张三" not in json.dumps(lines, ensure_ascii=False)
    assert lines[1]["event"] == "from stdlib ok"
    structlog.contextvars.clear_contextvars()


def test_cached_loggers_follow_a_later_configure(capsys):
    log = buslog.get_logger("t")
    buslog.configure(level="warning", fmt="json")
    log.info("hidden at warning")
    log.warning("shown at warning", n=1)
    out = capsys.readouterr().out
    assert "hidden at warning" not in out and json.loads(out)["n"] == 1
    buslog.configure(level="info", fmt="console")  # the same, now cached, logger
    log.info("shown at info", n=2)
    out = capsys.readouterr().out
    assert "shown at info" in out and not out.lstrip().startswith("{")
    buslog.configure(level="info", fmt="json")
    structlog.contextvars.clear_contextvars()


def test_exception_lines_carry_the_traceback(capsys):
    buslog.configure(level="info", fmt="json")
    log = buslog.get_logger("t")
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("failed", step=3)
    line = json.loads(capsys.readouterr().out)
    assert line["level"] == "error" and line["step"] == 3
    assert "KeyError" in line["exception"] and "Traceback" in line["exception"]
    structlog.contextvars.clear_contextvars()
