"""Which acknowledgement may follow which: one rule for the tracker and the inboxes.

The tracker enforces it on the acks topic; a department's inbox checks it before
sending, so a person hears "no" at once rather than through the dead-letter topic.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.enums import Stage


class AckRefusal(NamedTuple):
    reason: str  # a bounded code (metric label, dead-letter reason)
    message: str


def ack_refusal(
    current: Stage | str, new: Stage | str, *, case_owner_required: bool = False, case_owner: str | None = None
) -> AckRefusal | None:
    """Why acknowledging stage ``new`` of a referral now at ``current`` is refused, or None.

    Repeating the current stage is not refused (acknowledgements are idempotent). The
    order of the stages is the :class:`~schemas.enums.Stage` enum's.
    """
    current, new = Stage(current), Stage(new)
    if current == new:
        return None
    if current.terminal:
        return AckRefusal("referral_closed", f"referral is already {current.value}; cannot record {new.value}")
    if new.rank <= current.rank:  # e.g. received after accepted, declined after accepted
        return AckRefusal("stage_backwards", f"referral is {current.value}; {new.value} would go back")
    if not current.can_move_to(new):  # the one forward step that is not allowed: completing unaccepted
        return AckRefusal("not_accepted", "a referral is completed only after it was accepted")
    if new == Stage.accepted and case_owner_required and not case_owner:
        return AckRefusal("case_owner_required", "this referral's acceptance must name a case owner")
    return None
