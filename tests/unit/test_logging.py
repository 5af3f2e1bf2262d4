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
