"""How a metrics window is read: stored hours and days from the rollups, raw rows for the rest.

Contract (no Frappe here; naive site-time datetimes, periods named by their start):
- ``whole_hours(since, until, now)`` is the part of the creation window ``[since, until)`` that
  rollups may hold: ``[first, last)`` from the first hour boundary at or after ``since`` to the
  current hour's start (or ``until``'s hour, if earlier). ``until`` None means no upper bound.
- ``plan(since, until, now, stored_hours, stored_days)`` splits ``[since, until)`` into
  - ``days``: whole days (midnight to midnight) inside ``whole_hours`` that are stored;
  - ``hours``: whole hours inside ``whole_hours``, outside those days, that are stored;
  - ``raw``: ranges ``(start, end)`` (end None: unbounded) to read from the jobs themselves: the
    head before the first hour boundary, the current hour onwards (never stored), and every hour
    that is not stored. Adjacent raw ranges are merged.
  Every moment of the window is in exactly one segment. A day is used only when stored as a
  day; otherwise its hours are taken one by one.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Plan:
	days: list[datetime] = field(default_factory=list)
	hours: list[datetime] = field(default_factory=list)
	raw: list[tuple[datetime, datetime | None]] = field(default_factory=list)

	def add_raw(self, start: datetime, end: datetime | None) -> None:
		if end is not None and end <= start:
			return
		if self.raw and self.raw[-1][1] == start:
			self.raw[-1] = (self.raw[-1][0], end)
		else:
			self.raw.append((start, end))


def floor_hour(moment: datetime) -> datetime:
	return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
	floor = floor_hour(moment)
	return floor if floor == moment else floor + HOUR


def floor_day(moment: datetime) -> datetime:
	return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def whole_hours(since: datetime, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
	last = floor_hour(now) if until is None else min(floor_hour(now), floor_hour(until))
	if since >= last:  # nothing whole (and no hour to add to a ``since`` near the end of time)
		return last, last
	return ceil_hour(since), last


def plan(
	since: datetime,
	until: datetime | None,
	now: datetime,
	stored_hours=(),
	stored_days=(),
) -> Plan:
	if until is not None and until <= since:
		return Plan()
	hours, days = set(stored_hours), set(stored_days)
	days_with_hours = {floor_day(hour) for hour in hours}
	first, last = whole_hours(since, until, now)
	result = Plan()
	if first >= last or not (hours or days):
		result.add_raw(since, until)
		return result
	# Before the first stored period's day and after the last one's, everything is raw: the walk
	# below covers only the stretch in between, whatever the window's width.
	moment = max(first, floor_day(min(hours | days)))
	end = min(last, floor_day(max(hours | days)) + 2 * DAY)
	result.add_raw(since, moment)
	while moment < end:
		if moment.hour == 0 and moment + DAY <= end:
			if moment in days:
				result.days.append(moment)
				moment += DAY
				continue
			if moment not in days_with_hours:
				result.add_raw(moment, moment + DAY)
				moment += DAY
				continue
		if moment in hours:
			result.hours.append(moment)
		else:
			result.add_raw(moment, moment + HOUR)
		moment += HOUR
	result.add_raw(moment, until)
	return result
