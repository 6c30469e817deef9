"""The engine's clock: one zone-free time for every moment it stores in order to compare later.

Contract:
- ``utc_now()`` is a naive ``datetime`` in UTC. Every time the engine compares (heartbeats,
  retries' due times, ``run_at``, schedules' next fire times, upkeep liveness) is stored and
  compared in UTC (the ``*_utc`` columns), so a daylight-saving jump or a change of the site's
  time zone moves no due time and makes no live job look stale. The site-zone columns beside
  them (``heartbeat``, ``next_retry_at``, ``run_at``, ``next_run_at``) are for people to read.
  Tests move the clock by replacing ``utc_now`` (and ``frappe.utils.now_datetime`` with it).
- ``site_now()`` is the site's wall clock (naive, site zone) at the same instant.
- ``site_to_utc(value)`` / ``utc_to_site(value)`` convert between a naive site-zone datetime and a
  naive UTC one using the site's zone as it is now. A wall time that happens twice (clocks going
  back) is taken at its first occurrence; one that never happens (clocks going forward) is read
  with the offset before the jump, so it lands the same distance after it.
- ``parse_input(value, label)`` reads a caller's date and time (a ``datetime`` or a string, with or
  without an offset such as ``Z`` or ``+02:00``) as ``(site, utc)``, both naive: without an offset
  it is a site-zone wall time; with one, that instant (so an hour that happens twice when clocks go
  back is not ambiguous). ``parse_site_datetime`` returns the site-zone half only. Anything else
  raises ``frappe.ValidationError`` (HTTP 417); empty input gives ``None``.
"""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import frappe
from frappe import _
from frappe.utils import get_datetime, get_system_timezone


def utc_now() -> datetime:
	return datetime.now(timezone.utc).replace(tzinfo=None)


def site_zone() -> ZoneInfo:
	return ZoneInfo(get_system_timezone())


def site_to_utc(value: datetime | None) -> datetime | None:
	if value is None:
		return None
	if value.tzinfo is None:
		value = value.replace(tzinfo=site_zone())
	return value.astimezone(timezone.utc).replace(tzinfo=None)


def utc_to_site(value: datetime | None) -> datetime | None:
	if value is None:
		return None
	return value.replace(tzinfo=timezone.utc).astimezone(site_zone()).replace(tzinfo=None)


def site_now() -> datetime:
	return utc_to_site(utc_now())


def parse_site_datetime(value, label: str) -> datetime | None:
	parsed = parse_input(value, label)
	return parsed[0] if parsed else None


def parse_input(value, label: str) -> tuple[datetime, datetime] | None:
	if value in (None, ""):
		return None
	try:
		if isinstance(value, datetime):
			parsed = value
		elif isinstance(value, str):
			parsed = get_datetime(value.strip())
		else:
			raise TypeError(type(value).__name__)
		if not isinstance(parsed, datetime):
			raise TypeError(type(parsed).__name__)
	except Exception:
		frappe.throw(
			_("{0} {1} is not a date and time (e.g. 2026-05-01 14:30:00 or 2026-05-01T12:30:00Z)").format(
				label, frappe.bold(frappe.utils.escape_html(str(value)[:100]))
			),
			frappe.ValidationError,
		)
	if parsed.tzinfo is None:
		return parsed, site_to_utc(parsed)
	return parsed.astimezone(site_zone()).replace(tzinfo=None), parsed.astimezone(timezone.utc).replace(
		tzinfo=None
	)
