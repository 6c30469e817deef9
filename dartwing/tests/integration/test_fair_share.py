"""Fair share within a queue (``turns``): a real worker serves the organizations of a queue in
turns within a priority level, so one organization's flood delays another's next job by a
handful of jobs; priority still rules across levels."""

import itertools

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import states
from dartwing.tests.integration import helpers


@pytest.fixture
def orgs():
	made = []

	def make(count: int = 1, members=None) -> list[tuple[str, str]]:
		user = members or helpers.make_user()
		for _ in range(count):
			made.append((helpers.make_org(members=[user]), user))
		return made[-count:]

	yield make
	for organization, _user in made:
		helpers.cleanup_org(organization)


def _submit_many(
	user: str, job_type: str, count: int, organization: str, priority: str = "Normal"
) -> list[str]:
	from dartwing.dartwing_core.background_jobs.submit import submit

	frappe.set_user(user)
	try:
		names = [
			submit(job_type, {"n": n}, organization=organization, priority=priority)["job_id"]
			for n in range(count)
		]
		frappe.db.commit()
		return names
	finally:
		frappe.set_user("Administrator")


def _start_order(jobs: list[str]) -> list[frappe._dict]:
	frappe.db.rollback()
	rows = frappe.db.sql(
		"""SELECT name, organization, priority, status FROM `tabBackground Job` WHERE name IN %s
		ORDER BY started_at, name""",
		(tuple(jobs),),
		as_dict=True,
	)
	assert {row.status for row in rows} == {states.COMPLETED}
	return rows


def _ahead_of_first(order: list[frappe._dict], organization: str) -> int:
	return next(n for n, row in enumerate(order) if row.organization == organization)


def test_a_flood_of_one_organization_delays_another_by_a_handful(orgs, job_type_factory):
	job_type = job_type_factory(queue="long")
	(flooder, user_a), (other, user_b) = orgs() + orgs()
	flood = _submit_many(user_a, job_type, 400, flooder)
	single = _submit_many(user_b, job_type, 1, other)

	helpers.run_burst_worker(queues=("long",), timeout=300)
	order = _start_order(flood + single)
	assert _ahead_of_first(order, other) <= 4
	# The flood itself still runs in its own order (claim_order: first queued, first started).
	assert [row.name for row in order if row.organization == flooder] == flood


def test_two_floods_alternate(orgs, job_type_factory):
	job_type = job_type_factory(queue="long")
	(first, user_a), (second, user_b) = orgs() + orgs()
	jobs = _submit_many(user_a, job_type, 60, first) + _submit_many(user_b, job_type, 60, second)

	helpers.run_burst_worker(queues=("long",), timeout=300)
	order = [row.organization for row in _start_order(jobs)]
	# Turns: while both have work, neither runs more than two in a row (two workers' worth of slack).
	longest_run, run = 1, 1
	for before, after in itertools.pairwise(order[:100]):
		run = run + 1 if before == after else 1
		longest_run = max(longest_run, run)
	assert longest_run <= 2, order[:100]


def test_a_thousand_organizations_each_get_their_turn(orgs, job_type_factory):
	job_type = job_type_factory(queue="long")
	made = orgs(1000)
	flooder, flooder_user = made[0]
	flood = _submit_many(flooder_user, job_type, 500, flooder)
	firsts = {}
	for organization, user in made[1:]:
		firsts[organization] = _submit_many(user, job_type, 1, organization)[0]

	helpers.run_burst_worker(queues=("long",), timeout=600)
	order = _start_order(flood + list(firsts.values()))
	position = {row.name: n for n, row in enumerate(order)}
	# The organizations joined the line one after another: each one's first job starts within
	# its turn (the flooder had one before them; a few places of slack for the worker's drain).
	for joined, organization in enumerate(firsts, start=1):
		assert position[firsts[organization]] <= joined + 4, (organization, joined)
	assert sum(1 for row in order[:1000] if row.organization == flooder) <= 5


def test_priority_still_rules_across_levels(orgs, job_type_factory):
	job_type = job_type_factory(queue="long")
	(flooder, user_a), (other, user_b) = orgs() + orgs()
	critical_flood = _submit_many(user_a, job_type, 40, flooder, priority="Critical")
	normal = _submit_many(user_b, job_type, 1, other, priority="Normal")
	normal_flood = _submit_many(user_a, job_type, 40, flooder, priority="Normal")
	critical = _submit_many(user_b, job_type, 1, other, priority="Critical")

	helpers.run_burst_worker(queues=("long",), timeout=300)
	order = [row.name for row in _start_order(critical_flood + normal + normal_flood + critical)]
	# Every Critical job (the flooder's 40 and the other's one, which takes its turn among them
	# within a handful) before any Normal job; among the Normal ones, the other's within a handful.
	assert set(order[:41]) == set(critical_flood + critical)
	assert order.index(critical[0]) <= 4
	assert order.index(normal[0]) - 41 <= 4
