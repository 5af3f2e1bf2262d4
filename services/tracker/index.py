"""Process-local indexes over the tracker's table: when to look at a report next,
and what is outstanding (for the gauges).

The table (changelogged in Kafka) is the truth; these are derived from it and
rebuilt from it whenever this worker's partitions change, so a restart or a
rebalance never leaves them wrong. They let the clock find due reports without
scanning every open referral, and a scrape read gauges in O(departments).
:class:`TrackerIndex` holds both for one worker and rebuilds them from the table.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from typing import Any

from schemas.enums import Stage
from services.tracker import codec
from services.tracker.state import Tracker
from services.tracker.track import ReportTrack


class DueIndex:
    """Report keys by the time they next need the clock (a min-heap, stale entries skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, bytes]] = []
        self._when: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._when)

    def schedule(self, key: bytes, when: float | None) -> None:
        if when is None:
            self._when.pop(key, None)
            return
        if self._when.get(key) == when:
            return
        self._when[key] = when
        heapq.heappush(self._heap, (when, key))

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Keys due at ``now`` (each once; they are unscheduled until scheduled again)."""
        due: list[bytes] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            when, key = heapq.heappop(self._heap)
            if self._when.get(key) == when:
                del self._when[key]
                due.append(key)
        if len(self._heap) > 2 * len(self._when) + 1024:  # drop stale entries now and then
            self._heap = [(w, k) for k, w in self._when.items()]
            heapq.heapify(self._heap)
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._when.clear()


class Outstanding:
    """Open referrals by (department, stage waited in), with the oldest waiting time."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, Stage]] = Counter()
        # (key, department) -> (stage, since); the truth for the lazy oldest-heaps below
        self._open: dict[tuple[bytes, str], tuple[Stage, float]] = {}
        self._oldest: dict[tuple[str, Stage], list[tuple[float, bytes]]] = {}

    def update(self, key: bytes, track: ReportTrack | None, departments: Iterable[str]) -> None:
        """Replace what the index holds for ``key`` by ``track`` (None: forget the report).

        The previous stages come from the index itself: the caller's track object
        has usually been changed in place already.
        """
        for department in departments:
            previous = self._open.pop((key, department), None)
            if previous is not None:
                self.counts[(department, previous[0])] -= 1
        if track is not None:
            for department, ref in track.refs.items():
                if ref.open:
                    stage = ref.stage
                    self._open[(key, department)] = (stage, ref.stage_at)
                    self.counts[(department, stage)] += 1
                    heapq.heappush(self._oldest.setdefault((department, stage), []), (ref.stage_at, key))

    def oldest(self, department: str, stage: Stage | str) -> float | None:
        """When the longest-waiting referral of this department entered this stage."""
        heap = self._oldest.get((department, stage))
        while heap:
            since, key = heap[0]
            if self._open.get((key, department)) == (stage, since):
                return since
            heapq.heappop(heap)  # acknowledged or moved on since it was pushed
        return None

    def groups(self) -> Iterable[tuple[str, Stage]]:
        return [group for group, n in self.counts.items() if n > 0]

    def clear(self) -> None:
        self.counts.clear()
        self._open.clear()
        self._oldest.clear()

    def __len__(self) -> int:
        return len(self._open)


class TrackerIndex:
    """The derived indexes of one worker, and which partitions they were built for."""

    def __init__(self) -> None:
        self.due = DueIndex()
        self.outstanding = Outstanding()
        self.partitions: frozenset[int] | None = None
        self.ticking: dict[bytes, float] = {}  # ticks sent, not yet handled

    def apply(self, key: bytes, track: ReportTrack | None, departments: list[str], when: float | None) -> None:
        self.outstanding.update(key, track, departments)
        self.due.schedule(key, when)
        self.ticking.pop(key, None)

    def rebuild(self, items: Any, partitions: frozenset[int], tracker: Tracker) -> int:
        """Index the table's reports of ``partitions`` (``items``: key, state bytes); how many."""
        self.due.clear()
        self.outstanding.clear()
        self.ticking.clear()
        count = 0
        for key, raw in items:
            track = codec.decode(raw)
            if track.partition not in partitions:
                continue  # a standby copy of another worker's partition
            self.outstanding.update(key, track, [])
            self.due.schedule(key, tracker.next_check(track))
            count += 1
        self.partitions = partitions
        return count
