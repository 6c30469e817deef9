"""Cron on a wall clock: plain times, DST gaps and repeats, bad input."""

import itertools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from dartwing.dartwing_core.background_jobs import cron

NEW_YORK = "America/New_York"


def utc(*args):
	return datetime(*args, tzinfo=timezone.utc)


def test_next_after_in_utc():
	assert cron.next_after("*/15 * * * *", "UTC", utc(2026, 1, 1, 10, 7)) == utc(2026, 1, 1, 10, 15)


def test_next_after_is_strictly_after():
	assert cron.next_after("0 * * * *", "UTC", utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 11, 0)


def test_daily_wall_time_keeps_across_spring_forward():
	# 2026-03-08 02:00 EST -> 03:00 EDT. 09:00 New York is 14:00 UTC before and 13:00 UTC after.
	first = cron.next_after("0 9 * * *", NEW_YORK, utc(2026, 3, 7, 12, 0))
	second = cron.next_after("0 9 * * *", NEW_YORK, first)
	assert first == utc(2026, 3, 7, 14, 0)
	assert second == utc(2026, 3, 8, 13, 0)
	assert second.astimezone(ZoneInfo(NEW_YORK)).hour == 9


def test_daily_wall_time_keeps_across_fall_back():
	# 2026-11-01 02:00 EDT -> 01:00 EST. 09:00 New York is 13:00 UTC before and 14:00 UTC after.
	first = cron.next_after("0 9 * * *", NEW_YORK, utc(2026, 10, 31, 12, 0))
	second = cron.next_after("0 9 * * *", NEW_YORK, first)
	assert (first, second) == (utc(2026, 10, 31, 13, 0), utc(2026, 11, 1, 14, 0))


def test_skipped_wall_time_fires_after_the_change():
	# 02:30 does not exist on 2026-03-08 in New York: it fires at 03:30 EDT (07:30 UTC), once.
	fired = cron.next_after("30 2 * * *", NEW_YORK, utc(2026, 3, 8, 5, 0))
	assert fired == utc(2026, 3, 8, 7, 30)
	assert cron.next_after("30 2 * * *", NEW_YORK, fired) == utc(2026, 3, 9, 6, 30)


def test_repeated_wall_time_fires_once():
	# 01:30 happens twice on 2026-11-01 in New York (05:30 and 06:30 UTC): only the first fires.
	due = cron.due_between("30 1 * * *", NEW_YORK, utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0), 10)
	assert due == [utc(2026, 11, 1, 5, 30)]


def test_hourly_through_fall_back_never_repeats_an_instant():
	due = cron.due_between("0 * * * *", NEW_YORK, utc(2026, 11, 1, 3, 30), utc(2026, 11, 1, 9, 30), 100)
	assert due == sorted(set(due))
	assert all(b > a for a, b in itertools.pairwise(due))


def test_due_between_is_bounded_by_limit_and_until():
	after = utc(2026, 1, 1, 0, 0)
	assert len(cron.due_between("* * * * *", "UTC", after, utc(2026, 1, 1, 1, 0), 1000)) == 60
	assert cron.due_between("* * * * *", "UTC", after, utc(2026, 1, 1, 1, 0), 5) == [
		utc(2026, 1, 1, 0, m) for m in range(1, 6)
	]
	assert cron.due_between("0 0 1 1 *", "UTC", after, utc(2026, 6, 1), 10) == []


def test_fire_times_in_other_zones():
	# Kolkata is UTC+05:30 with no DST; Lord Howe moves by 30 minutes.
	assert cron.next_after("0 9 * * *", "Asia/Kolkata", utc(2026, 5, 1, 0, 0)) == utc(2026, 5, 1, 3, 30)
	fired = cron.next_after("0 9 * * *", "Australia/Lord_Howe", utc(2026, 5, 1, 0, 0))
	assert fired.astimezone(ZoneInfo("Australia/Lord_Howe")).hour == 9


@pytest.mark.parametrize("expression", ["", "* * * *", "61 * * * *", "* * * * * *", "every minute", None])
def test_bad_expressions_are_refused(expression):
	with pytest.raises(ValueError):
		cron.validate(expression, "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", None])
def test_bad_zones_are_refused(zone):
	with pytest.raises(ValueError):
		cron.validate("* * * * *", zone)


def test_naive_datetimes_are_refused():
	with pytest.raises(ValueError):
		cron.next_after("* * * * *", "UTC", datetime(2026, 1, 1))
