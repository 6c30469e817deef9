"""The Desk's read models (``api/desk.py``), the form's onload flags and the Job Type Health
report: figures equal counts made here independently, and each user sees only their
organizations' jobs. (The Desk itself is tested in a real browser: ``dartwing/tests/browser``.)
"""

from datetime import timedelta

import frappe
import pytest
from frappe.utils import now_datetime

from dartwing.dartwing_core.api import desk
from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.dartwing_core.report.job_type_health import job_type_health
from dartwing.tests.integration import helpers

FAILED = (states.FAILED, states.TIMED_OUT, states.DEAD_LETTER)


def _submit_as(user, job_type, parameters, organization, **kwargs):
	frappe.set_user(user)
	try:
		job_id = submit(job_type, parameters=parameters, organization=organization, **kwargs)["job_id"]
		frappe.db.commit()
	finally:
		frappe.set_user("Administrator")
	return job_id


def _as(user, fn, *args, **kwargs):
	frappe.set_user(user)
	try:
		return fn(*args, **kwargs)
	finally:
		frappe.set_user("Administrator")


def _scenario(org, job_type_factory):
	"""Org A (the fixture's) and org B, each with a Completed, a Failed and a Retrying job."""
	fail_type = job_type_factory(handler="demo_fail", max_retries=0)
	retry_type = job_type_factory(
		handler="demo_fail", max_retries=2, backoff_strategy="Schedule", backoff_schedule="3600,3600"
	)
	echo_type = job_type_factory(handler="demo_echo")
	other_org, other_user = helpers.make_org_with_user()
	jobs = {}
	for organization, user in ((org.name, org.user), (other_org, other_user)):
		jobs[organization] = {
			states.COMPLETED: _submit_as(
				user,
				echo_type,
				{"n": 1},
				organization,
				reference_doctype="Organization",
				reference_name=organization,
			),
			states.FAILED: _submit_as(user, fail_type, {"error": "permanent"}, organization),
			states.RETRYING: _submit_as(
				user, retry_type, {"error": "transient", "fail_times": 5}, organization
			),
		}
	helpers.run_burst_worker()
	for by_status in jobs.values():
		for status, name in by_status.items():
			assert helpers.job(name).status == status, (name, helpers.job(name).status)
	return frappe._dict(
		other_org=other_org,
		other_user=other_user,
		jobs=jobs,
		types=(fail_type, retry_type, echo_type),
	)


def _count(where: str, values: dict) -> int:
	frappe.db.rollback()
	return frappe.db.sql(f"SELECT COUNT(*) FROM `tabBackground Job` WHERE {where}", values)[0][0]


@pytest.fixture
def manager():
	user = helpers.make_user(roles=("Background Job Manager",))
	yield user
	frappe.db.rollback()
	frappe.delete_doc("User", user, ignore_permissions=True, force=True)
	frappe.db.commit()


def test_workspace_figures_match_counts_and_are_scoped(org, job_type_factory, manager):
	made = _scenario(org, job_type_factory)
	try:
		since = now_datetime() - timedelta(hours=24)
		# A member sees their organization's figures, equal to a count of its jobs.
		card = _as(org.user, desk.failed_last_24h)
		assert (
			card["value"]
			== 1
			== _count(
				"organization = %(o)s AND status IN %(f)s AND finished_at >= %(s)s",
				{"o": org.name, "f": FAILED, "s": since},
			)
		)
		hourly = _as(org.user, desk.jobs_per_hour)
		assert len(hourly["labels"]) == 24
		totals = {d["name"]: sum(d["values"]) for d in hourly["datasets"]}
		assert totals["Completed"] == 1 and totals["Failed"] == 1 and totals["Retrying"] == 1
		assert sum(totals.values()) == 3
		fail_type, _retry_type, echo_type = made.types
		run_time = _as(org.user, desk.run_time_by_job_type)
		assert {fail_type, echo_type} <= set(run_time["labels"]) <= set(made.types)

		# A manager's card counts every organization.
		assert _as(manager, desk.failed_last_24h)["value"] == _count(
			"status IN %(f)s AND finished_at >= %(s)s", {"f": FAILED, "s": since}
		)
	finally:
		helpers.cleanup_org(made.other_org)


def test_reference_jobs_onload_flags_bulk_cancel_and_timeline(org, job_type_factory, manager):
	made = _scenario(org, job_type_factory)
	try:
		mine = made.jobs[org.name]
		theirs = made.jobs[made.other_org]

		listed = _as(org.user, desk.get_reference_jobs, "Organization", org.name)
		assert [job.name for job in listed["jobs"]] == [mine[states.COMPLETED]]
		assert listed["total"] == 1 and listed["counts_by_status"] == {states.COMPLETED: 1}
		# Another organization's document: nothing, and no error (every Desk form asks).
		assert _as(org.user, desk.get_reference_jobs, "Organization", made.other_org)["total"] == 0
		assert _as(org.user, desk.get_reference_jobs, "Organization", "no such org")["total"] == 0

		def onload(user, name):
			doc = _as(user, frappe.get_doc, "Background Job", name)
			_as(user, doc.run_method, "onload")
			return {key: bool(doc.get_onload().get(key)) for key in ("can_cancel", "can_retry")}

		assert onload(org.user, mine[states.RETRYING]) == {"can_cancel": True, "can_retry": False}
		assert onload(org.user, mine[states.FAILED]) == {"can_cancel": False, "can_retry": False}
		assert onload(manager, mine[states.FAILED]) == {"can_cancel": False, "can_retry": True}

		outcome = _as(org.user, desk.cancel_jobs, [mine[states.RETRYING], theirs[states.RETRYING]])
		by_job = {row["job_id"]: row for row in outcome["results"]}
		assert by_job[mine[states.RETRYING]]["status"] == states.CANCELED
		assert by_job[mine[states.RETRYING]]["error"] is None
		assert by_job[theirs[states.RETRYING]]["status"] is None and by_job[theirs[states.RETRYING]]["error"]
		assert helpers.job(theirs[states.RETRYING]).status == states.RETRYING

		timeline = desk.job_timeline("Background Job", mine[states.RETRYING])
		assert [item["content"].split("data-event='")[1].split("'")[0] for item in timeline] == (
			helpers.events(mine[states.RETRYING])
		)
	finally:
		helpers.cleanup_org(made.other_org)


def test_job_type_health_report_matches_counts_and_is_scoped(org, job_type_factory, manager):
	made = _scenario(org, job_type_factory)
	try:
		fail_type, retry_type, echo_type = made.types
		columns, rows, _message, chart, summary = _as(org.user, job_type_health.execute, {})
		by_type = {row.job_type: row for row in rows}
		# Only the member's organization: one job of each type, not two.
		assert set(by_type) == {fail_type, retry_type, echo_type}
		assert by_type[fail_type].jobs == 1 and by_type[fail_type].failed == 1
		assert float(by_type[fail_type].failure_rate) == 100
		assert by_type[fail_type].last_failed_job == made.jobs[org.name][states.FAILED]
		assert "PermanentError" in by_type[fail_type].last_error
		assert by_type[echo_type].completed == 1 and float(by_type[echo_type].failure_rate) == 0
		assert by_type[retry_type].active == 1 and by_type[retry_type].failure_rate is None
		assert {c["fieldname"] for c in columns} >= {"runs", "failure_rate", "run_p50", "run_p95"}
		assert summary[0]["value"] == 3

		# A manager sees both organizations' jobs of these types.
		rows = _as(manager, job_type_health.execute, {"job_type": fail_type})[1]
		assert len(rows) == 1 and rows[0].jobs == 2 and rows[0].failed == 2
	finally:
		helpers.cleanup_org(made.other_org)
