"""The claim reads one indexed key (``claim_order``) and takes jobs in exactly the order of
priority with aging: a real worker runs a queue of jobs with mixed priorities and ages in the
order the standing rule gives (rank + waited / aging, the longest waiting first among equals),
also after the aging setting changes."""

from datetime import timedelta
from fractions import Fraction

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import clock, priority, states
from dartwing.tests.integration import helpers

PRIORITIES = ("Low", "Normal", "High", "Critical")


def _standing(row, now, aging) -> Fraction:
	waited = now - row.queued_at
	return priority.rank(row.priority) + Fraction(waited // timedelta(microseconds=1), 10**6 * aging)


def _set_aging(seconds: int) -> None:
	settings = frappe.get_single("Background Job Settings")
	settings.aging_seconds = seconds
	settings.save(ignore_permissions=True)
	frappe.db.commit()


@pytest.fixture
def aging():
	before = frappe.db.get_single_value("Background Job Settings", "aging_seconds")
	yield
	_set_aging(before)


@pytest.mark.parametrize("new_aging", [None, 30])
def test_a_worker_takes_jobs_in_priority_with_aging_order(org, job_type_factory, aging, new_aging):
	_set_aging(120)
	job_type = job_type_factory(queue="long")
	# (priority, seconds already waited): ties and overtakes on purpose
	plan = [
		("Low", 0), ("Low", 400), ("Normal", 0), ("Normal", 130), ("High", 0), ("High", 250),
		("Critical", 0), ("Low", 365), ("Normal", 245), ("Critical", 10), ("High", 121), ("Low", 130),
	]  # fmt: skip
	jobs = []
	for n, (level, _waited) in enumerate(plan):
		jobs.append(helpers.submit_as(org.user, job_type, {"n": n}, priority=level)["job_id"])
	frappe.db.rollback()
	rows = frappe.db.sql(
		"SELECT name, priority, queued_at, claim_order FROM `tabBackground Job` WHERE name IN %s",
		(tuple(jobs),),
		as_dict=True,
	)
	for row in rows:
		assert round(row.claim_order, 6) == float(
			priority.claim_key(clock.site_to_utc(row.queued_at), row.priority, 120)
		)
	# Age the jobs as if they had waited: queued_at and its key move together.
	for job, (_level, waited) in zip(jobs, plan, strict=True):
		frappe.db.sql(
			"""UPDATE `tabBackground Job` SET queued_at = queued_at - INTERVAL %(s)s SECOND,
			claim_order = claim_order - %(s)s WHERE name = %(job)s""",
			{"s": waited, "job": job},
		)
	frappe.db.commit()
	if new_aging:
		_set_aging(new_aging)

	rows = frappe.db.sql(
		"SELECT name, priority, queued_at FROM `tabBackground Job` WHERE name IN %s",
		(tuple(jobs),),
		as_dict=True,
	)
	now = frappe.utils.now_datetime()
	expected = [
		row.name for row in sorted(rows, key=lambda r: (-_standing(r, now, new_aging or 120), r.queued_at))
	]

	helpers.run_burst_worker(queues=("long",))
	frappe.db.rollback()
	started = frappe.db.sql_list(
		"""SELECT job FROM `tabJob Execution Log` WHERE job IN %s AND event = 'Started' ORDER BY name""",
		(tuple(jobs),),
	)
	assert {helpers.job(job).status for job in jobs} == {states.COMPLETED}
	assert started == expected
