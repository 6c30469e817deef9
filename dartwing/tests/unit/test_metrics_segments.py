"""A metrics window splits into stored days, stored hours and raw ranges that cover it exactly once."""

import itertools
import random
import time
from datetime import datetime, timedelta

import pytest

from dartwing.dartwing_core.background_jobs import metrics_segments as segments
from dartwing.dartwing_core.background_jobs.metrics_segments import DAY, HOUR

NOW = datetime(2026, 3, 10, 14, 37, 12, 500)
FAR = datetime(2100, 1, 1)


def pieces(plan):
	"""Every segment as (start, end, kind), in order."""
	out = [(day, day + DAY, "day") for day in plan.days]
	out += [(hour, hour + HOUR, "hour") for hour in plan.hours]
	out += [(start, end, "raw") for start, end in plan.raw]
	return sorted(out, key=lambda piece: piece[0])


def assert_partition(plan, since, until):
	ordered = pieces(plan)
	assert ordered, "an empty plan for a non-empty window"
	assert ordered[0][0] == since
	for (_, end, _), (start, _, _) in itertools.pairwise(ordered):
		assert end == start, f"gap or overlap at {end} / {start}"
	assert ordered[-1][1] == until


def everything(first, last):
	hours = []
	moment = first
	while moment < last:
		hours.append(moment)
		moment += HOUR
	return hours, [hour for hour in hours if hour.hour == 0 and hour + DAY <= last]


def test_a_window_inside_the_current_hour_is_read_raw():
	since = NOW - timedelta(minutes=20)
	plan = segments.plan(since, None, NOW, stored_hours=[segments.floor_hour(NOW) - HOUR])
	assert (plan.days, plan.hours, plan.raw) == ([], [], [(since, None)])


def test_thirty_days_fully_stored_read_a_raw_head_and_the_current_hour_only():
	since = NOW - timedelta(days=30)
	first, last = segments.whole_hours(since, None, NOW)
	assert (first, last) == (datetime(2026, 2, 8, 15), datetime(2026, 3, 10, 14))
	hours, days = everything(first, last)
	plan = segments.plan(since, None, NOW, hours, days)
	assert plan.raw == [(since, first), (last, None)]
	assert plan.days == [datetime(2026, 2, 9) + i * DAY for i in range(29)]
	# 9 hours before the first midnight (15:00-23:00), 14 after the last one (00:00-13:00).
	assert len(plan.hours) == 9 + 14
	assert_partition(plan, since, None)


def test_a_day_not_stored_as_a_day_is_read_by_its_hours():
	since = datetime(2026, 3, 7, 0, 0)
	first, last = segments.whole_hours(since, None, NOW)
	hours, days = everything(first, last)
	missing_day = datetime(2026, 3, 8)
	plan = segments.plan(since, None, NOW, hours, [day for day in days if day != missing_day])
	assert missing_day not in plan.days
	assert [hour for hour in plan.hours if segments.floor_day(hour) == missing_day] == [
		missing_day + i * HOUR for i in range(24)
	]
	assert plan.raw == [(last, None)]
	assert_partition(plan, since, None)


def test_missing_hours_fall_back_to_raw_ranges_merged_with_their_neighbours():
	since = datetime(2026, 3, 10, 2, 30)
	first, last = segments.whole_hours(since, None, NOW)
	hours, _ = everything(first, last)
	missing = {datetime(2026, 3, 10, 3), datetime(2026, 3, 10, 7), datetime(2026, 3, 10, 8)}
	plan = segments.plan(since, None, NOW, [hour for hour in hours if hour not in missing])
	assert plan.raw == [
		(since, datetime(2026, 3, 10, 4)),
		(datetime(2026, 3, 10, 7), datetime(2026, 3, 10, 9)),
		(datetime(2026, 3, 10, 14), None),
	]
	assert_partition(plan, since, None)


def test_nothing_stored_is_one_raw_range():
	since = NOW - timedelta(days=7, minutes=13)
	plan = segments.plan(since, None, NOW)
	assert (plan.days, plan.hours, plan.raw) == ([], [], [(since, None)])


def test_a_bounded_window_of_dates_ends_at_its_bound():
	since, until = datetime(2026, 3, 1), datetime(2026, 3, 5)
	first, last = segments.whole_hours(since, until, NOW)
	assert (first, last) == (since, until)
	hours, days = everything(first, last)
	plan = segments.plan(since, until, NOW, hours, days)
	assert plan.days == [since + i * DAY for i in range(4)]
	assert (plan.hours, plan.raw) == ([], [])
	# A bound in the future stops the stored part at the current hour.
	plan = segments.plan(since, FAR, NOW, hours + everything(until, NOW)[0], days)
	assert plan.raw == [(segments.floor_hour(NOW), FAR)]
	assert_partition(plan, since, FAR)


def test_an_empty_or_reversed_window_has_no_segments():
	plan = segments.plan(NOW, NOW - HOUR, NOW)
	assert (plan.days, plan.hours, plan.raw) == ([], [], [])


def test_windows_at_the_ends_of_time_are_read_raw():
	latest = datetime(9999, 12, 31, 23, 59, 59)
	assert segments.plan(latest, None, NOW).raw == [(latest, None)]
	assert segments.plan(datetime(1, 1, 1), datetime(1, 1, 1, 0, 30), NOW).raw == [
		(datetime(1, 1, 1), datetime(1, 1, 1, 0, 30))
	]


def test_a_window_since_the_year_one_is_planned_quickly():
	since = datetime(1, 1, 1)
	first, last = segments.whole_hours(NOW - timedelta(days=30), None, NOW)
	hours, days = everything(first, last)
	started = time.perf_counter()
	plan = segments.plan(since, datetime(2100, 1, 1), NOW, hours, days)
	assert time.perf_counter() - started < 0.1
	assert plan.raw[0] == (since, first) and plan.raw[-1] == (last, datetime(2100, 1, 1))
	assert len(plan.days) == 29
	assert segments.plan(since, None, NOW).raw == [(since, None)]


@pytest.mark.parametrize("seed", range(40))
def test_random_windows_are_covered_exactly_once_by_stored_or_raw_segments(seed):
	rng = random.Random(seed)
	now = NOW + timedelta(minutes=rng.randrange(0, 60 * 24 * 3), seconds=rng.random() * 60)
	since = now - timedelta(minutes=rng.randrange(1, 60 * 24 * 40), seconds=rng.random() * 60)
	until = None if rng.random() < 0.6 else since + timedelta(hours=rng.randrange(1, 24 * 50))
	first, last = segments.whole_hours(since, until, now)
	all_hours, all_days = everything(first, last)
	stored_hours = {hour for hour in all_hours if rng.random() < 0.9}
	stored_days = {day for day in all_days if rng.random() < 0.7}
	plan = segments.plan(since, until, now, stored_hours, stored_days)
	assert_partition(plan, since, until)
	assert set(plan.days) <= stored_days and set(plan.hours) <= stored_hours
	used_days = set(plan.days)
	assert not [hour for hour in plan.hours if segments.floor_day(hour) in used_days]
	for hour in all_hours:  # a stored hour outside a used day is read from the rollup
		if hour in stored_hours and segments.floor_day(hour) not in used_days:
			assert hour in plan.hours
	for start, end in plan.raw:
		assert end is None or start < end
	if until is None:  # the current hour is never stored
		assert plan.raw[-1][1] is None and plan.raw[-1][0] <= max(since, segments.floor_hour(now))
