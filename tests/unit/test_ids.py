"""store/models.py: the two kinds of row ids, and Alloy's timestamp shape."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from embedded_ui.store import iso_ms, new_id, new_ordered_id

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


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_iso_ms_is_isoformat_in_utc_to_the_millisecond(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso_ms(moment) == expected
