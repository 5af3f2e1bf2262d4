"""UUIDv7 report ids (RFC 9562): layout, time order, monotonic within a process."""

import threading
import time
import uuid

import pytest

from services.common import ids
from services.common.ids import uuid7, uuid7_time_ms


@pytest.fixture
def private_clock(monkeypatch):
    """Tests that feed fixed times must not move the process's id clock into the future."""
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)


def test_layout_is_version_7_variant_rfc():
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_text_is_the_canonical_lowercase_form():
    for _ in range(1000):
        text = uuid7()
        assert text == str(uuid.UUID(text))


def test_embeds_the_current_millisecond():
    before = int(time.time() * 1000)
    value = uuid7()
    after = int(time.time() * 1000)
    assert before <= uuid7_time_ms(value) <= after


def test_strictly_increasing_within_one_millisecond_and_across_overflow(private_clock):
    ids = [uuid7(now_ms=1_700_000_000_000) for _ in range(5000)]  # > 4096: the counter overflows
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert uuid7_time_ms(ids[-1]) >= 1_700_000_000_000


def test_monotonic_even_when_the_clock_steps_back(private_clock):
    a = uuid7(now_ms=2_000_000_000_000)
    b = uuid7(now_ms=1_999_999_999_000)
    assert b > a


def test_unique_and_ordered_per_thread_under_concurrency():
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        for _ in range(2000):
            out.append(uuid7())

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for out in per_thread for i in out]
    assert len(set(everything)) == len(everything)
    assert all(out == sorted(out) for out in per_thread)
