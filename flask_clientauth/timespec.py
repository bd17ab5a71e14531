"""Durations (``90d``) and dates (``2027-01-31``) as the CLI takes them: one strict format each.

A duration is a positive whole number and one unit: ``s``, ``m``, ``h``, ``d`` or ``w``. A date is
ISO 8601: a day (``2027-01-31``, 00:00 UTC of that day) or a time of day with an optional offset
(``2027-01-31T12:00:00+01:00``, ``...Z``); without an offset it is UTC. Anything else is a
:class:`ValueError` whose message says what is accepted.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)([smhdw])")
#: Longer than any sensible TTL or grace period; also keeps ``now + duration`` inside ``datetime``.
MAX_DURATION = timedelta(days=36500)
DURATION_HELP = "a whole number and a unit: 45s, 30m, 24h, 90d or 2w"

_DATETIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?"
)
DATE_HELP = (
    "an ISO 8601 date (2027-01-31, meaning 00:00 UTC) or date and time (2027-01-31T12:00:00+01:00; "
    "UTC without an offset)"
)
#: Timestamps before this are typos (and out of some databases' range).
MIN_YEAR = 1970


def parse_duration(text: str) -> timedelta:
    """``90d`` -> 90 days. Zero, negative, fractional, unit-less or over 100 years: :class:`ValueError`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: give {DURATION_HELP}")
    number = int(match.group(1))
    if number == 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    if number > MAX_DURATION.days * 86400:  # before timedelta(): huge numbers overflow it
        raise ValueError(f"{text!r}: a duration must be at most {MAX_DURATION.days}d")
    duration = timedelta(**{_UNITS[match.group(2)]: number})
    if duration > MAX_DURATION:
        raise ValueError(f"{text!r}: a duration must be at most {MAX_DURATION.days}d")
    return duration


def parse_datetime(text: str) -> datetime:
    """An aware datetime in UTC from ``2027-01-31``, ``2027-01-31T12:00`` or ``2027-01-31T12:00:00+01:00``."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date: give {DATE_HELP}")
    parts = match.groupdict()
    zone = timezone.utc
    if parts["zone"] not in (None, "Z"):
        sign = -1 if parts["zone"][0] == "-" else 1
        hours, minutes = int(parts["zone"][1:3]), int(parts["zone"][4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r}: the offset {parts['zone']} is not a valid UTC offset")
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        value = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int((parts["fraction"] or "0").ljust(6, "0")),
            tzinfo=zone,
        ).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # 2027-02-30, 25:00, or an offset pushing it past year 9999
        raise ValueError(f"{text!r} is not a valid date or time of day") from None
    if value.year < MIN_YEAR:
        raise ValueError(f"{text!r}: dates before {MIN_YEAR} are not accepted")
    return value
