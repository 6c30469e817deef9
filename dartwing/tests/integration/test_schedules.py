"""Recurring schedules on a real site, with an injected clock: wall time across DST, missed-run and
overlap policies, two schedulers racing, validation and the schedules apps declare in hooks."""

import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import schedules, states
from dartwing.tests.integration import helpers


def utc(*args) -> datetime:
	return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def make_schedule(org):
	made = []

	def make(next_run_at: datetime | None = None, **values) -> str:
		doc = frappe.get_doc(
			{
				"doctype": "Job Schedule",
				"schedule_name": helpers.unique("schedule"),
				"job_type": "demo_echo",
				"organization": org.name,
				"run_as": org.user,
				"cron_expression": "0 * * * *",
				"time_zone": "UTC",
				"parameters": {"from": "schedule"},
				**values,
			}
		).insert(ignore_permissions=True)
		if next_run_at:
			frappe.db.set_value(
				"Job Schedule",
				doc.name,
				{
					"next_run_at": schedules.to_site(next_run_at),
					"next_run_utc": next_run_at.astimezone(timezone.utc).replace(tzinfo=None),
				},
			)
		frappe.db.commit()
		made.append(doc.name)
		return doc.name

	yield make
	frappe.db.rollback()
	for name in made:
		helpers.delete_jobs({"job_schedule": name})
		frappe.db.delete("Job Schedule", {"name": name})
	frappe.db.commit()


def runs(schedule: str) -> list[frappe._dict]:
	frappe.db.rollback()
	return frappe.get_all(
		"Background Job",
		filters={"job_schedule": schedule},
		fields=["name", "status", "scheduled_for", "owner", "parameters"],
		order_by="scheduled_for",
	)


def fire(now: datetime, name: str) -> dict | None:
	"""One scheduler tick at ``now``; returns this schedule's outcome (None: it was not due)."""
	outcomes = [o for o in schedules.fire_due_schedules(now) if o["schedule"] == name]
	return outcomes[0] if outcomes else None


def schedule_row(name: str) -> frappe._dict:
	frappe.db.rollback()
	return frappe.db.get_value(
		"Job Schedule", name, ["next_run_at", "last_run_at", "last_job", "last_outcome"], as_dict=True
	)


def test_new_schedule_gets_its_next_run_from_the_cron_and_zone(make_schedule):
	name = make_schedule(cron_expression="30 6 * * *", time_zone="Asia/Kolkata")
	next_run = schedules.to_aware(schedule_row(name).next_run_at)
	assert next_run > datetime.now(timezone.utc)
	wall = next_run.astimezone(ZoneInfo("Asia/Kolkata"))
	assert (wall.hour, wall.minute) == (6, 30)


def test_fires_at_the_same_wall_time_across_a_dst_change(make_schedule, org):
	# New York moves from EST to EDT on 2026-03-08: 09:00 there is 14:00 UTC, then 13:00 UTC.
	name = make_schedule(
		next_run_at=utc(2026, 3, 7, 14, 0),
		cron_expression="0 9 * * *",
		time_zone="America/New_York",
		overlap_policy="Allow",
	)
	assert fire(utc(2026, 3, 7, 13, 59), name) is None, "fired before it was due"
	assert len(fire(utc(2026, 3, 7, 14, 0, 20), name)["jobs"]) == 1
	assert schedules.to_aware(schedule_row(name).next_run_at) == utc(2026, 3, 8, 13, 0)
	assert fire(utc(2026, 3, 8, 12, 59), name) is None
	assert len(fire(utc(2026, 3, 8, 13, 0, 20), name)["jobs"]) == 1

	fired = runs(name)
	assert [schedules.to_aware(r.scheduled_for) for r in fired] == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]
	for run in fired:
		wall = schedules.to_aware(run.scheduled_for).astimezone(ZoneInfo("America/New_York"))
		assert (wall.hour, wall.minute) == (9, 0)
		assert run.owner == org.user, "runs are submitted as the schedule's user"
		assert frappe.parse_json(run.parameters) == {"from": "schedule"}
	assert schedule_row(name).last_job == fired[-1].name


@pytest.mark.parametrize(
	"policy, limit, expected_hours",
	[
		("Skip", 10, []),
		("Run Once", 10, [13]),
		("Catch Up", 10, [10, 11, 12, 13]),
		("Catch Up", 2, [12, 13]),
	],
)
def test_missed_run_policies(make_schedule, policy, limit, expected_hours):
	# Due at 10:00, 11:00, 12:00 and 13:00; the scheduler comes back at 13:30: all four are late.
	name = make_schedule(
		next_run_at=utc(2026, 5, 4, 10, 0),
		missed_run_policy=policy,
		catch_up_limit=limit,
		overlap_policy="Allow",
	)
	outcome = fire(utc(2026, 5, 4, 13, 30), name)
	assert [schedules.to_aware(r.scheduled_for).hour for r in runs(name)] == expected_hours
	assert outcome["missed"] == 4 - len(expected_hours)
	assert schedules.to_aware(schedule_row(name).next_run_at) == utc(2026, 5, 4, 14, 0)
	if outcome["missed"]:
		assert f"{outcome['missed']} missed run(s) dropped" in schedule_row(name).last_outcome


def test_skip_policy_still_fires_the_run_that_is_on_time(make_schedule):
	name = make_schedule(
		next_run_at=utc(2026, 5, 4, 10, 0), missed_run_policy="Skip", misfire_grace_seconds=90
	)
	outcome = fire(utc(2026, 5, 4, 13, 0, 45), name)
	assert [schedules.to_aware(r.scheduled_for).hour for r in runs(name)] == [13]
	assert outcome["missed"] == 3


def test_skip_if_running_skips_while_the_previous_run_is_active(make_schedule):
	name = make_schedule(next_run_at=utc(2026, 5, 4, 10, 0), overlap_policy="Skip If Running")
	first = fire(utc(2026, 5, 4, 10, 0, 10), name)["jobs"]
	assert len(first) == 1 and helpers.job(first[0]).status in states.ACTIVE

	second = fire(utc(2026, 5, 4, 11, 0, 10), name)
	assert second["jobs"] == [] and second["skipped"] == 1
	assert first[0] in schedule_row(name).last_outcome
	assert schedules.to_aware(schedule_row(name).next_run_at) == utc(
		2026, 5, 4, 12, 0
	), "skipped, not delayed"

	frappe.db.sql("UPDATE `tabBackground Job` SET status = 'Completed' WHERE name = %s", first[0])
	frappe.db.commit()
	assert len(fire(utc(2026, 5, 4, 12, 0, 10), name)["jobs"]) == 1


def test_allow_overlap_fires_while_the_previous_run_is_active(make_schedule):
	name = make_schedule(next_run_at=utc(2026, 5, 4, 10, 0), overlap_policy="Allow")
	fire(utc(2026, 5, 4, 10, 0, 10), name)
	fire(utc(2026, 5, 4, 11, 0, 10), name)
	fired = runs(name)
	assert len(fired) == 2 and all(r.status in states.ACTIVE for r in fired)


def test_scheduled_runs_are_not_deduplicated_against_each_other(make_schedule, job_type_factory):
	deduped = job_type_factory(dedup_window_seconds=3600)
	name = make_schedule(next_run_at=utc(2026, 5, 4, 10, 0), job_type=deduped, overlap_policy="Allow")
	fire(utc(2026, 5, 4, 10, 0, 10), name)
	fire(utc(2026, 5, 4, 11, 0, 10), name)
	assert len({r.name for r in runs(name)}) == 2


def test_two_schedulers_never_fire_a_due_time_twice(make_schedule):
	names = [make_schedule(next_run_at=utc(2026, 5, 4, 10, 0), overlap_policy="Allow") for _ in range(5)]
	site = frappe.local.site
	errors = []

	def scheduler(barrier, now):
		frappe.init(site=site, sites_path=helpers.SITES_PATH)
		try:
			frappe.connect()
			frappe.set_user("Administrator")
			barrier.wait(timeout=30)
			schedules.fire_due_schedules(now)
		except Exception as exc:
			errors.append(exc)
		finally:
			frappe.destroy()

	for hour in (10, 11, 12):
		barrier = threading.Barrier(2)
		threads = [
			threading.Thread(target=scheduler, args=(barrier, utc(2026, 5, 4, hour, 0, 10))) for _ in range(2)
		]
		for thread in threads:
			thread.start()
		for thread in threads:
			thread.join(timeout=60)
	assert not errors
	for name in names:
		assert [schedules.to_aware(r.scheduled_for).hour for r in runs(name)] == [10, 11, 12]


def test_a_submit_that_fails_is_recorded_and_the_schedule_moves_on(make_schedule, org):
	name = make_schedule(next_run_at=utc(2026, 5, 4, 10, 0))
	frappe.db.set_value("Organization", org.name, "status", "Suspended")
	frappe.db.commit()
	outcome = fire(utc(2026, 5, 4, 10, 0, 10), name)
	assert outcome["jobs"] == [] and "suspended" in outcome["error"]
	row = schedule_row(name)
	assert "Could not submit" in row.last_outcome
	assert schedules.to_aware(row.next_run_at) == utc(2026, 5, 4, 11, 0)
	assert runs(name) == []


@pytest.mark.parametrize(
	"values, message",
	[
		({"cron_expression": "61 * * * *"}, "not valid"),
		({"cron_expression": "* * *"}, "five fields"),
		({"time_zone": "Mars/Olympus"}, "Unknown time zone"),
		({"parameters": "[1, 2]"}, "JSON object"),
		({"catch_up_limit": 0, "missed_run_policy": "Catch Up"}, "Catch Up Limit"),
	],
)
def test_bad_schedules_are_refused(make_schedule, values, message):
	with pytest.raises(frappe.ValidationError, match=message):
		make_schedule(**values)
	frappe.db.rollback()


def test_disabling_clears_next_run_and_enabling_starts_from_now(make_schedule):
	name = make_schedule(next_run_at=utc(2026, 5, 4, 10, 0))
	doc = frappe.get_doc("Job Schedule", name)
	doc.enabled = 0
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	assert schedule_row(name).next_run_at is None
	assert fire(utc(2026, 5, 4, 12, 0), name) is None

	doc.reload()
	doc.enabled = 1
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	assert schedules.to_aware(schedule_row(name).next_run_at) > datetime.now(
		timezone.utc
	), "no runs owed for the time it was off"


def test_schedules_declared_in_hooks_are_installed_and_kept_on_migrate():
	for name, job_type in (
		("dartwing_retention_daily", "dartwing_retention"),
		("dartwing_queue_health", "dartwing_queue_health"),
	):
		row = frappe.db.get_value(
			"Job Schedule", name, ["job_type", "source", "enabled", "next_run_at"], as_dict=True
		)
		assert row and row.job_type == job_type and row.source == "Hooks" and row.next_run_at

	frappe.db.set_value("Job Schedule", "dartwing_queue_health", "enabled", 0)
	frappe.db.set_value("Job Schedule", "dartwing_queue_health", "cron_expression", "0 0 * * *")
	try:
		schedules.sync_hook_schedules()
		row = frappe.db.get_value(
			"Job Schedule", "dartwing_queue_health", ["enabled", "cron_expression"], as_dict=True
		)
		assert row.cron_expression == "*/5 * * * *", "the app's definition wins"
		assert row.enabled == 0, "the site's choice to disable it is kept"
	finally:
		frappe.db.set_value("Job Schedule", "dartwing_queue_health", "enabled", 1)
		schedules.sync_hook_schedules()
		frappe.db.commit()
