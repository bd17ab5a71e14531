"""The CLI's durations (``90d``) and dates (``2027-01-31``): what is accepted, and what is refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flask_clientauth.timespec import MAX_DURATION, parse_datetime, parse_duration

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        (" 1d ", timedelta(days=1)),
        ("36500d", MAX_DURATION),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0d", "longer than zero"),
        ("0s", "longer than zero"),
        ("-1d", "not a duration"),
        ("1.5h", "not a duration"),
        ("90", "not a duration"),
        ("d", "not a duration"),
        ("90D", "not a duration"),
        ("1y", "not a duration"),
        ("1d2h", "not a duration"),
        ("1 d", "not a duration"),
        ("", "not a duration"),
        ("36501d", "at most 36500d"),
        ("5300w", "at most 36500d"),
        ("9" * 30 + "s", "at most 36500d"),  # would overflow timedelta
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(text)
    if "not a duration" in message:
        assert "45s, 30m, 24h, 90d or 2w" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T12:00", datetime(2027, 1, 31, 12, tzinfo=UTC)),  # naive: UTC
        ("2027-01-31 12:00:30", datetime(2027, 1, 31, 12, 0, 30, tzinfo=UTC)),
        ("2027-01-31T12:00:00+01:00", datetime(2027, 1, 31, 11, tzinfo=UTC)),
        ("2027-01-31T12:00:00-05:30", datetime(2027, 1, 31, 17, 30, tzinfo=UTC)),
        ("2027-01-31T12:00:00Z", datetime(2027, 1, 31, 12, tzinfo=UTC)),
        ("2027-01-31T12:00:00.5Z", datetime(2027, 1, 31, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2027-01-31T00:30:00+01:00", datetime(2027, 1, 30, 23, 30, tzinfo=UTC)),
    ],
)
def test_dates(text: str, expected: datetime) -> None:
    value = parse_datetime(text)
    assert value == expected
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2027-02-30", "not a valid date"),
        ("2027-13-01", "not a valid date"),
        ("2027-01-31T24:00", "not a valid date"),
        ("2027-01-31T12:00+25:00", "not a valid UTC offset"),
        ("9999-12-31T23:00-05:00", "not a valid date"),  # past year 9999 in UTC
        ("31/01/2027", "not a date"),
        ("2027-1-31", "not a date"),
        ("20270131", "not a date"),
        ("2027-01-31T12", "not a date"),
        ("2027-01-31T12:00+0100", "not a date"),
        ("tomorrow", "not a date"),
        ("", "not a date"),
        ("1969-12-31", "before 1970"),
    ],
)
def test_bad_dates(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_datetime(text)
