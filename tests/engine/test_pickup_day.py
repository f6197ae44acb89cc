"""Which day's pickup collects a label: the store's local time against its cut-off."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fulfil.core.pickups import pickup_day


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("2026-11-23T09:00", date(2026, 11, 23)),  # Monday 10:00 in Paris: today
        ("2026-11-23T14:59", date(2026, 11, 23)),  # 15:59, a minute before the cut-off
        ("2026-11-23T15:00", date(2026, 11, 24)),  # 16:00 in Paris: tomorrow
        ("2026-11-27T15:30", date(2026, 11, 30)),  # Friday after the cut-off: Monday
        ("2026-11-28T09:00", date(2026, 11, 30)),  # Saturday: Monday
        ("2026-11-22T23:30", date(2026, 11, 23)),  # Sunday in UTC, Monday 00:30 in Paris
    ],
)
def test_the_pickup_day_follows_the_local_cut_off_and_skips_weekends(utc, expected):
    now = datetime.fromisoformat(utc).replace(second=30, tzinfo=UTC)
    assert pickup_day(now, "Europe/Paris", "16:00") == expected
