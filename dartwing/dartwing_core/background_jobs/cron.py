"""Cron expressions evaluated on a time zone's wall clock, DST included.

Contract (no Frappe here; all datetimes in and out are timezone-aware):
- ``available_zones()`` is the set of IANA zone names this machine knows.
- ``validate(expression, zone)`` raises ``ValueError`` with a readable reason for a bad cron
  expression or an unknown IANA zone.
- ``next_after(expression, zone, after)`` is the first fire time strictly after ``after``.
- ``due_between(expression, zone, after, until, limit)`` lists fire times in ``(after, until]``,
  oldest first, at most ``limit`` of them.

Wall-clock rules: the expression is matched against local wall time in ``zone``. A wall time
that does not exist (the hour skipped when clocks go forward) fires at the same distance after
the change, e.g. 02:30 on a night that jumps from 02:00 to 03:00 fires at 03:30; a wall time
that happens twice (clocks go back) fires once, at its first occurrence.
"""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

# Enough iterations to cross any gap between two fire times of a valid expression.
_MAX_STEPS = 100_000


def zone_info(zone: str) -> ZoneInfo:
	try:
		return ZoneInfo(zone)
	except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
		raise ValueError(f"Unknown time zone {zone!r}; use an IANA name such as Europe/Berlin") from exc


def available_zones() -> set[str]:
	return available_timezones()


def validate(expression: str, zone: str) -> None:
	zone_info(zone)
	if not isinstance(expression, str) or len(expression.split()) != 5:
		raise ValueError(
			f"Cron expression {expression!r} must have five fields: minute hour day month weekday"
		)
	if not croniter.is_valid(expression):
		raise ValueError(f"Cron expression {expression!r} is not valid")


def _to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
	"""The UTC instant of a naive wall time; a skipped wall time keeps the offset before the change."""
	return wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def next_after(expression: str, zone: str, after: datetime) -> datetime:
	if after.tzinfo is None:
		raise ValueError("next_after needs a timezone-aware datetime")
	tz = zone_info(zone)
	# Start from the wall time of `after` minus an hour, so fire times in a repeated or skipped hour
	# are not jumped over, then take the first one whose instant is after `after`.
	wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=1)
	walls = croniter(expression, wall)
	for _ in range(_MAX_STEPS):
		instant = _to_instant(walls.get_next(datetime), tz)
		if instant > after:
			return instant
	raise ValueError(f"Cron expression {expression!r} never fires")


def due_between(expression: str, zone: str, after: datetime, until: datetime, limit: int) -> list[datetime]:
	due = []
	current = after
	while len(due) < limit:
		current = next_after(expression, zone, current)
		if current > until:
			break
		due.append(current)
	return due
