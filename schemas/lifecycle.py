"""Which acknowledgement may follow which: one rule for the tracker and the inboxes.

The tracker enforces it on the acks topic; a department's inbox checks it before
sending, so a person hears "no" at once rather than through the dead-letter topic.
"""

from __future__ import annotations

from typing import NamedTuple

# declined and accepted share a rank: neither may follow the other.
_RANK = {"routed": 0, "received": 1, "accepted": 2, "declined": 2, "completed": 3}
CLOSED_STAGES = ("declined", "completed")


class AckRefusal(NamedTuple):
    reason: str  # a bounded code (metric label, dead-letter reason)
    message: str


def ack_refusal(
    current: str, new: str, *, case_owner_required: bool = False, case_owner: str | None = None
) -> AckRefusal | None:
    """Why acknowledging stage ``new`` of a referral now at ``current`` is refused, or None.

    Repeating the current stage is not refused (acknowledgements are idempotent).
    """
    if current == new:
        return None
    if current in CLOSED_STAGES:
        return AckRefusal("referral_closed", f"referral is already {current}; cannot record {new}")
    if _RANK[new] <= _RANK[current]:  # e.g. received after accepted, declined after accepted
        return AckRefusal("stage_backwards", f"referral is {current}; {new} would go back")
    if new == "completed" and current != "accepted":
        return AckRefusal("not_accepted", "a referral is completed only after it was accepted")
    if new == "accepted" and case_owner_required and not case_owner:
        return AckRefusal("case_owner_required", "this referral's acceptance must name a case owner")
    return None
