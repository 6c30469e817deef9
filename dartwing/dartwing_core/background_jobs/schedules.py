"""Recurring schedules: a cron expression on a time zone's wall clock, fired once per due time.

Contract:
- ``fire_due_schedules(now=None)`` runs on every upkeep pass (``upkeep``) and from the scheduler
  every minute as a fallback (``upkeep.scheduler_fallback``). For each enabled Job Schedule whose
  ``next_run_utc`` has come (UTC, so neither a daylight-saving jump nor a change of the site's time
  zone moves it), it decides the runs by the missed-run policy, submits them as the schedule's user
  (same checks as any submit), and moves ``next_run_utc`` (and ``next_run_at``, its site-zone copy
  for people) to the next fire time after ``now``. A schedule is claimed by a conditional update of ``next_run_utc`` in the
  same transaction as its submits, so with several schedulers each due time fires exactly once.
- Missed-run policies, for due times that are later than the on-time grace: ``Skip`` drops them
  (an on-time run still fires), ``Run Once`` fires one run for all of them, ``Catch Up`` fires
  each one, at most ``catch_up_limit``, the latest ones.
- Overlap policies: ``Skip If Running`` fires nothing while an earlier run of the schedule is
  still active (the due time is skipped, not delayed); ``Allow`` always fires.
- Runs are submitted as ``run_as_user(schedule)``: its Run As, else the user who created it.
  ``check_run_as(schedule)`` (on every save) refuses a schedule that would run as anyone but
  the user saving it, unless that user is a System Manager: nobody else can make jobs run as
  another user through a schedule.
- ``initial_next_run(schedule)`` is the first fire time after now, as a naive UTC datetime.
- ``sync_hook_schedules()`` (after migrate) creates and updates the schedules apps declare in
  ``dartwing_job_schedules``; an enabled/disabled choice made in Desk is kept. An entry names a
  ``job_type``, or a ``method`` (an existing scheduled function, with optional ``queue``,
  ``timeout``, ``retries``, ``backoff``) whose Job Type is made as ``dartwing.enqueue`` makes it.
  Without an ``organization`` it runs in the site's obvious one
  (``tenancy.obvious_organization``), else in ``Dartwing System``.
- ``now`` may be injected (aware, or naive in the site's time zone) so tests control the clock.
"""

from datetime import datetime, timedelta, timezone

import frappe
from frappe import _
from frappe.utils import cint, get_system_timezone

from dartwing.dartwing_core.background_jobs import clock, cron, states, stored_text, submit
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.tenancy import ensure_system_organization, obvious_organization

SCHEDULE_DOCTYPE = "Job Schedule"
SCHEDULES_HOOK = "dartwing_job_schedules"
SKIP, RUN_ONCE, CATCH_UP = "Skip", "Run Once", "Catch Up"
SKIP_IF_RUNNING, ALLOW = "Skip If Running", "Allow"
# Apps' hook schedules may set these; everything else is owned by the site.
HOOK_FIELDS = (
	"job_type", "organization", "parameters", "priority", "cron_expression", "time_zone",
	"missed_run_policy", "overlap_policy", "catch_up_limit", "misfire_grace_seconds", "description",
)  # fmt: skip


def _site_zone():
	return cron.zone_info(get_system_timezone())


def to_aware(value: datetime) -> datetime:
	"""A site datetime (naive, in the site's time zone) as an aware UTC datetime."""
	if value.tzinfo is None:
		value = value.replace(tzinfo=_site_zone())
	return value.astimezone(timezone.utc)


def to_site(value: datetime) -> datetime:
	"""An aware datetime as the naive site-time-zone datetime Frappe stores."""
	return value.astimezone(_site_zone()).replace(tzinfo=None)


def _utc_naive(value: datetime) -> datetime:
	return value.astimezone(timezone.utc).replace(tzinfo=None)


def _clock_now() -> datetime:
	return clock.utc_now().replace(tzinfo=timezone.utc)


def initial_next_run(schedule, now: datetime | None = None) -> datetime:
	now = to_aware(now) if now else _clock_now()
	return _utc_naive(cron.next_after(schedule.cron_expression, schedule.time_zone, now))


def runs_to_fire(schedule, due_times: list[datetime], now: datetime) -> tuple[list[datetime], int]:
	"""The due times to fire under the missed-run policy, and how many are dropped."""
	grace = timedelta(seconds=cint(schedule.misfire_grace_seconds) or 90)
	policy = schedule.missed_run_policy or RUN_ONCE
	if policy == SKIP:
		runs = [t for t in due_times if now - t <= grace][-1:]
	elif policy == CATCH_UP:
		runs = due_times[-max(cint(schedule.catch_up_limit), 1) :]
	else:
		runs = due_times[-1:]
	return runs, len(due_times) - len(runs)


def _active_run(schedule_name: str) -> str | None:
	rows = frappe.db.sql(
		"SELECT name FROM `tabBackground Job` WHERE job_schedule = %s AND status IN %s LIMIT 1",
		(schedule_name, tuple(states.ACTIVE)),
	)
	return rows[0][0] if rows else None


def _claim(schedule, new_next: datetime, last_run: datetime | None) -> bool:
	"""Move next_run_at on, only if nobody else did: the one place a due time is taken."""
	frappe.db.sql(
		"""UPDATE `tabJob Schedule` SET next_run_utc = %(new_next_utc)s, next_run_at = %(new_next)s,
			last_run_at = COALESCE(%(last_run)s, last_run_at)
		WHERE name = %(name)s AND enabled = 1 AND next_run_utc = %(old_next)s""",
		{
			"new_next_utc": _utc_naive(new_next),
			"new_next": to_site(new_next),
			"last_run": to_site(last_run) if last_run else None,
			"name": schedule.name,
			"old_next": schedule.next_run_utc,
		},
	)
	return frappe.db._cursor.rowcount == 1


def run_as_user(schedule) -> str:
	return schedule.run_as or schedule.owner


def check_run_as(schedule) -> None:
	editor = frappe.session.user
	runs_as = schedule.run_as = schedule.run_as or (editor if schedule.is_new() else schedule.owner)
	if runs_as == editor or editor == "Administrator" or "System Manager" in frappe.get_roles(editor):
		return
	frappe.throw(
		_(
			"This schedule runs its jobs as {0}. Only a System Manager can save a schedule that runs as "
			"another user; set Run As to yourself to take it over."
		).format(frappe.bold(runs_as)),
		frappe.PermissionError,
		title=_("Not permitted"),
	)


def _submit_run(schedule, due: datetime) -> str:
	user = run_as_user(schedule)
	previous_user = frappe.session.user
	frappe.set_user(user)
	try:
		answer = submit.submit(
			schedule.job_type,
			parameters=schedule.parameters,
			organization=schedule.organization,
			priority=schedule.priority or None,
			job_schedule=schedule.name,
			scheduled_for=to_site(due),
		)
	finally:
		frappe.set_user(previous_user)
	return answer["job_id"]


def fire_schedule(schedule, now: datetime) -> dict:
	"""Fire one due schedule; returns what happened (also stored as its last outcome)."""
	first_due = schedule.next_run_utc.replace(tzinfo=timezone.utc)
	due_times = [
		first_due,
		*cron.due_between(schedule.cron_expression, schedule.time_zone, first_due, now, 1000),
	]
	runs, dropped = runs_to_fire(schedule, due_times, now)
	new_next = cron.next_after(schedule.cron_expression, schedule.time_zone, now)
	if not _claim(schedule, new_next, runs[-1] if runs else None):
		return {"schedule": schedule.name, "claimed": False, "jobs": []}

	outcome = {"schedule": schedule.name, "claimed": True, "jobs": [], "missed": dropped, "skipped": 0}
	active = _active_run(schedule.name) if schedule.overlap_policy != ALLOW else None
	if active:
		outcome["skipped"] = len(runs)
		message = _("Skipped {0} run(s): the previous run {1} is still active").format(len(runs), active)
	else:
		frappe.db.savepoint("dartwing_schedule")
		try:
			outcome["jobs"] = [_submit_run(schedule, due) for due in runs]
			message = _("Submitted {0}").format(", ".join(outcome["jobs"])) if runs else _("No run")
		except Exception as exc:
			frappe.db.rollback(save_point="dartwing_schedule")
			outcome["error"] = str(exc)
			message = _("Could not submit: {0}").format(frappe.utils.strip_html_tags(str(exc)))
	if dropped:
		message += " " + _("({0} missed run(s) dropped by the {1} policy)").format(
			dropped, schedule.missed_run_policy
		)
	frappe.db.set_value(
		SCHEDULE_DOCTYPE,
		schedule.name,
		{
			"last_outcome": stored_text.plain(message),
			**({"last_job": outcome["jobs"][-1]} if outcome["jobs"] else {}),
		},
		update_modified=False,
	)
	jobs_logger().info({"event": "schedule_fired", **outcome, "due": [to_site(t).isoformat() for t in runs]})
	return outcome


def fire_due_schedules(now: datetime | None = None) -> list[dict]:
	now = to_aware(now) if now else _clock_now()
	due = frappe.get_all(
		SCHEDULE_DOCTYPE,
		filters={"enabled": 1, "next_run_utc": ("<=", _utc_naive(now))},
		fields=[
			"name",
			"owner",
			"run_as",
			"job_type",
			"organization",
			"parameters",
			"priority",
			"cron_expression",
			"time_zone",
			"missed_run_policy",
			"catch_up_limit",
			"overlap_policy",
			"misfire_grace_seconds",
			"next_run_utc",
		],  # fmt: skip
		order_by="next_run_utc",
	)
	outcomes = []
	for schedule in due:
		try:
			outcomes.append(fire_schedule(schedule, now))
			frappe.db.commit()
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Dartwing schedule {schedule.name} could not fire")
	return outcomes


def sync_hook_schedules(declared: list[dict] | None = None) -> None:
	"""Create or update the schedules apps declare (``declared``: the hook's entries, by default)."""
	from dartwing.dartwing_core.background_jobs import method_jobs

	if declared is None:
		declared = frappe.get_hooks(SCHEDULES_HOOK) or []
	system_organization = ensure_system_organization()
	for definition in declared:
		definition = dict(definition)
		name = definition.pop("schedule_name")
		if method := definition.pop("method", None):
			job_type_values = method_jobs.declared_values(
				queue=definition.pop("queue", None),
				timeout=definition.pop("timeout", None),
				retries=definition.pop("retries", None),
				backoff_spec=definition.pop("backoff", None),
			)
			definition["job_type"] = method_jobs.ensure_job_type(
				method_jobs.method_path(method), job_type_values
			)
		definition.setdefault("organization", obvious_organization() or system_organization)
		definition.setdefault("time_zone", "UTC")
		if isinstance(definition.get("parameters"), dict):
			definition["parameters"] = frappe.as_json(definition["parameters"])
		unknown = set(definition) - set(HOOK_FIELDS)
		if unknown:
			frappe.throw(
				_("Schedule {0} in hooks has unknown keys: {1}").format(name, ", ".join(sorted(unknown)))
			)
		if frappe.db.exists(SCHEDULE_DOCTYPE, name):
			doc = frappe.get_doc(SCHEDULE_DOCTYPE, name)
			doc.update(definition)
		else:
			doc = frappe.get_doc(
				{
					"doctype": SCHEDULE_DOCTYPE,
					"schedule_name": name,
					"source": "Hooks",
					"enabled": 1,
					**definition,
				}
			)
		doc.flags.ignore_permissions = True
		doc.save()
