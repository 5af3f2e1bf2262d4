"""Property tests over generated valid submissions of every source."""

from datetime import UTC, datetime

from hypothesis import given, settings

from schemas import REPORT_MODELS, SUBMISSION_MODELS, ReportAdapter, dump_event, make_report, parse_report
from services.common.ids import uuid7

from .strategies import submissions


@settings(max_examples=150, deadline=None)
@given(submissions())
def test_generated_submissions_validate_and_round_trip(case):
    source, data = case
    model = SUBMISSION_MODELS[source].model_validate(data)
    assert SUBMISSION_MODELS[source].model_validate_json(model.model_dump_json()) == model
    report = make_report(model, source=source, report_id=uuid7(), source_system="sys-1",
                         received_at=datetime.now(UTC))
    assert isinstance(report, REPORT_MODELS[source])
    back = parse_report(dump_event(report))
    assert back == report
    assert ReportAdapter.validate_python(report.model_dump(mode="json")) == report
