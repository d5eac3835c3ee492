"""store/models.py: the two kinds of row ids."""

from __future__ import annotations

import re
import time

from embedded_ui.store import new_id, new_ordered_id

HEX24 = re.compile(r"[0-9a-f]{24}")


def test_ordered_ids_have_alloys_shape_and_follow_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    first = new_ordered_id()
    after = time.time_ns() // 1_000_000
    assert HEX24.fullmatch(first)
    assert before <= int(first[:12], 16) <= after
    time.sleep(0.002)
    later = [new_ordered_id() for _ in range(1_000)]
    assert all(HEX24.fullmatch(i) for i in later)
    assert all(first < i for i in later)  # a later millisecond sorts after
    assert len(set(later)) == 1_000  # the random half tells apart ids of one millisecond


def test_plain_ids_stay_random() -> None:
    ids = [new_id() for _ in range(1_000)]
    assert all(HEX24.fullmatch(i) for i in ids)
    assert len({i[:12] for i in ids}) == 1_000  # no shared time prefix
