"""Fair share with real workers: within a queue the organizations take turns at each priority
level (``turns``), so one organization's flood delays another's next job by a handful of jobs,
and priority still rules across levels; per-organization caps of running jobs
(``organization_caps``); Dartwing's due work and Frappe's own jobs share one worker
(``worker_sharing``)."""

import itertools
import json
import os
import subprocess
import sys
import time

import frappe
import pytest
from frappe.utils.background_jobs import get_queue

from dartwing.dartwing_core.background_jobs import clock, dispatch, states
from dartwing.dartwing_core.background_jobs.submit import submit
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


@pytest.fixture
def queue_cap():
	def set_cap(queue: str, cap: int) -> None:
		settings = frappe.get_single("Background Job Settings")
		settings.append("organization_caps", {"queue": queue, "max_running_per_organization": cap})
		settings.save(ignore_permissions=True)
		frappe.db.commit()

	yield set_cap
	frappe.db.rollback()
	settings = frappe.get_single("Background Job Settings")
	settings.set("organization_caps", [])
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def _submit_many(
	user: str, job_type: str, count: int, organization: str, priority: str = "Normal", parameters=None
) -> list[str]:
	frappe.set_user(user)
	try:
		names = [
			submit(job_type, parameters or {"n": n}, organization=organization, priority=priority)["job_id"]
			for n in range(count)
		]
		frappe.db.commit()
		return names
	finally:
		frappe.set_user("Administrator")


def _drain(jobs: list[str], timeout: float = 300) -> None:
	"""One burst worker on the long queue until ``jobs`` are done. Other benches' tests on this
	machine may flush the shared Redis (and our tokens with it): a job left Queued then gets a
	fresh wake-up, as the reaper would give it, and the worker runs again (the claim's order does
	not depend on tokens)."""
	for _round in range(3):
		helpers.run_burst_worker(queues=("long",), timeout=timeout)
		frappe.db.rollback()
		left = frappe.db.sql_list(
			"SELECT name FROM `tabBackground Job` WHERE name IN %s AND status = 'Queued'", (tuple(jobs),)
		)
		if not left:
			return
		dispatch.push_many([(job, "long", dispatch.new_token_id(job)[0]) for job in left])
		frappe.db.commit()


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

	_drain(flood + single)
	order = _start_order(flood + single)
	assert _ahead_of_first(order, other) <= 4
	# The flood itself still runs in its own order (claim_order: first queued, first started).
	assert [row.name for row in order if row.organization == flooder] == flood


def test_two_floods_alternate(orgs, job_type_factory):
	job_type = job_type_factory(queue="long")
	(first, user_a), (second, user_b) = orgs() + orgs()
	jobs = _submit_many(user_a, job_type, 60, first) + _submit_many(user_b, job_type, 60, second)

	_drain(jobs)
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

	jobs = flood + list(firsts.values())
	_drain(jobs, timeout=600)
	order = _start_order(jobs)
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

	_drain(critical_flood + normal + normal_flood + critical)
	order = [row.name for row in _start_order(critical_flood + normal + normal_flood + critical)]
	# Every Critical job (the flooder's 40 and the other's one, which takes its turn among them
	# within a handful) before any Normal job; among the Normal ones, the other's within a handful.
	assert set(order[:41]) == set(critical_flood + critical)
	assert order.index(critical[0]) <= 4
	assert order.index(normal[0]) - 41 <= 4


def _clear_stale_turns() -> None:
	"""What upkeep does every few seconds (``turns.repair``): rows left waiting by earlier tests,
	whose jobs were deleted, would otherwise come first in the line."""
	from dartwing.dartwing_core.background_jobs import turns

	turns.repair()
	frappe.db.commit()


def _served_at(queue: str, organization: str, moment) -> None:
	"""As if ``organization`` was last served at ``moment`` in the Normal line of ``queue``."""
	frappe.db.sql(
		"""UPDATE `tabBackground Job Turn` SET last_served_at = %s
		WHERE queue = %s AND priority = 'Normal' AND organization = %s""",
		(moment, queue, organization),
	)
	frappe.db.commit()


def _turn_waiting(queue: str, organization: str) -> bool:
	return bool(
		frappe.db.get_value(
			"Background Job Turn",
			{"queue": queue, "priority": "Normal", "organization": organization},
			"waiting",
		)
	)


def test_the_organization_in_turn_keeps_it_while_another_worker_claims_its_best_job(orgs, job_type_factory):
	"""The organization in turn (least recently served) loses nothing when another worker is
	claiming its best job (that row locked): this claim takes the organization's next job, not the
	queue's best."""
	import pymysql

	from dartwing.dartwing_core.background_jobs import claiming, side_channel

	_clear_stale_turns()
	job_type = job_type_factory(queue="long")
	(flooder, user_a), (in_turn, user_b) = orgs() + orgs()
	_submit_many(user_a, job_type, 5, flooder)
	first, second = _submit_many(user_b, job_type, 2, in_turn)
	_served_at("long", flooder, frappe.utils.now_datetime())

	other_worker = pymysql.connect(**side_channel.connection_params())
	try:
		with other_worker.cursor() as cursor:
			cursor.execute("BEGIN")
			cursor.execute("SELECT name FROM `tabBackground Job` WHERE name = %s FOR UPDATE", (first,))
		claimed = claiming.claim("long", None, None)
		assert claimed.name == second
	finally:
		frappe.db.rollback()
		other_worker.rollback()
		other_worker.close()
	assert claiming.claim("long", None, None).name == first
	frappe.db.rollback()


def test_turn_rows_left_waiting_with_nothing_queued_are_cleared_and_the_next_organization_served(
	orgs, job_type_factory
):
	"""Rows still marked waiting whose jobs went another way (a race, a delete) are passed over and
	cleared by the claim, however many come first in the line."""
	from dartwing.dartwing_core.background_jobs import claiming

	_clear_stale_turns()
	job_type = job_type_factory(queue="long")
	(flooder, user_a), (served, user_b), *gone = orgs() + orgs() + orgs() + orgs() + orgs()
	_submit_many(user_a, job_type, 5, flooder)
	(expected,) = _submit_many(user_b, job_type, 1, served)
	long_ago = frappe.utils.add_to_date(frappe.utils.now_datetime(), hours=-1)
	for minutes, (organization, user) in enumerate(gone):
		(job,) = _submit_many(user, job_type, 1, organization)
		# Gone without the claim's bookkeeping seeing it: its row stays waiting, first in line.
		frappe.db.delete("Background Job", {"name": job})
		_served_at("long", organization, frappe.utils.add_to_date(long_ago, minutes=minutes))
	_served_at("long", served, frappe.utils.add_to_date(long_ago, minutes=30))
	_served_at("long", flooder, frappe.utils.now_datetime())

	claimed = claiming.claim("long", None, None)
	assert claimed.name == expected
	assert not any(_turn_waiting("long", organization) for organization, _user in gone)
	frappe.db.rollback()


def test_a_drain_reads_a_line_where_one_organization_waits_alone_once_every_few_claims(
	orgs, job_type_factory, monkeypatch
):
	"""The drain loop (``executor.run_next``, here in this process) reads the turn rows of a line
	where the drained organization waits alone once every ``turns.SOLE_RECHECK_CLAIMS`` claims;
	a claim outside a drain reads them every time."""
	from dartwing.dartwing_core.background_jobs import claiming, executor, turns

	_clear_stale_turns()
	job_type = job_type_factory(queue="long", handler="demo_echo")
	((organization, user),) = orgs()
	jobs = _submit_many(user, job_type, 12, organization)
	reads = []
	read_turns = turns.next_in_line
	monkeypatch.setattr(turns, "next_in_line", lambda *args: reads.append(args) or read_turns(*args))
	try:
		assert claiming.claim("long", None, None) and claiming.claim("long", None, None)
		assert len(reads) == 2
		frappe.db.rollback()
		reads.clear()

		ran = executor.run_next(None, "long")
	finally:
		helpers.drain_queues()
	assert set(jobs) <= set(ran)
	assert len(reads) <= -(-len(ran) // turns.SOLE_RECHECK_CLAIMS), (len(reads), len(ran))


def test_an_organization_that_joins_while_a_horse_drains_another_gets_its_turn_within_a_handful(
	orgs, job_type_factory
):
	"""A draining horse reads a line where one organization waits alone only every
	``turns.SOLE_RECHECK_CLAIMS`` claims: one that starts queuing there meanwhile waits that many of
	the drained organization's jobs more at most, not the rest of its flood."""
	from dartwing.dartwing_core.background_jobs import turns

	_clear_stale_turns()
	job_type = job_type_factory(queue="long", handler="demo_echo")
	(flooder, user_a), (joiner, user_b) = orgs() + orgs()
	flood = _submit_many(user_a, job_type, 400, flooder)
	with helpers.Worker(queues=("long",)):
		helpers.wait_for(
			lambda: frappe.db.count("Background Job", {"name": ("in", flood), "status": states.COMPLETED})
			>= 30,
			60,
			message="the drain to be under way",
		)
		(joined,) = _submit_many(user_b, job_type, 1, joiner)
		helpers.wait_for(lambda: helpers.terminal(joined), 60, message="the joining organization's job")
	helpers.drain_queues()  # the rest of the flood's tokens: its jobs go with the organization
	frappe.db.rollback()
	queued_at, started_at = frappe.db.get_value("Background Job", joined, ["queued_at", "started_at"])
	ahead = frappe.db.count(
		"Background Job",
		{"name": ("in", flood), "started_at": ("between", [queued_at, started_at])},
	)
	started_before = frappe.db.count(
		"Background Job", {"name": ("in", flood), "started_at": ("<=", started_at)}
	)
	assert started_before < len(flood), "the flood was over before the other organization joined"
	assert ahead <= turns.SOLE_RECHECK_CLAIMS + 2, ahead


def _most_at_once(rows: list[frappe._dict]) -> int:
	"""The most of ``rows`` (with started_at / finished_at) running at one moment."""
	moments = sorted([(row.started_at, 1) for row in rows] + [(row.finished_at, -1) for row in rows])
	running = most = 0
	for _moment, change in moments:
		running += change
		most = max(most, running)
	return most


def _run_with_workers(jobs: list[str], workers: int = 3, timeout: float = 90) -> list[frappe._dict]:
	started = [helpers.Worker(queues=("long",)) for _ in range(workers)]
	try:
		helpers.wait_for(
			lambda: all(helpers.terminal(job) for job in jobs), timeout, message="jobs to finish"
		)
	finally:
		for worker in started:
			worker.stop()
	frappe.db.rollback()
	return frappe.db.sql(
		"""SELECT name, organization, status, started_at, finished_at FROM `tabBackground Job`
		WHERE name IN %s""",
		(tuple(jobs),),
		as_dict=True,
	)


def test_a_job_type_cap_limits_each_organization_running_jobs(orgs, job_type_factory):
	job_type = job_type_factory(queue="long", handler="demo_sleep", max_running_per_organization=1)
	(capped, user_a), (other, user_b) = orgs() + orgs()
	sleep = {"seconds": 1.5, "steps": 1}
	jobs = _submit_many(user_a, job_type, 4, capped, parameters=sleep)
	jobs += _submit_many(user_b, job_type, 2, other, parameters=sleep)

	rows = _run_with_workers(jobs)
	assert {row.status for row in rows} == {states.COMPLETED}
	assert _most_at_once([row for row in rows if row.organization == capped]) == 1
	assert _most_at_once([row for row in rows if row.organization == other]) == 1
	# The cap is per organization: the other's jobs ran beside the capped one's.
	assert _most_at_once(rows) >= 2


def test_a_queue_cap_limits_each_organization_running_jobs(orgs, job_type_factory, queue_cap):
	queue_cap("long", 2)
	job_type = job_type_factory(queue="long", handler="demo_sleep")
	((organization, user),) = orgs()
	jobs = _submit_many(user, job_type, 5, organization, parameters={"seconds": 1.5, "steps": 1})

	rows = _run_with_workers(jobs)
	assert {row.status for row in rows} == {states.COMPLETED}
	assert _most_at_once(rows) == 2


def test_the_cap_count_never_waits_on_a_job_another_worker_is_finishing(orgs, job_type_factory):
	"""A worker finishing a capped organization's job holds its row and then, in the same
	transaction, claims again, which takes the organization's cap lock. Another worker counting
	that organization's running jobs under the cap lock must not wait for that row: the two would
	wait on each other (a deadlock that rolled the finished job's outcome back)."""
	import pymysql

	from dartwing.dartwing_core.background_jobs import lock_waits, organization_caps, settings, side_channel

	job_type = job_type_factory(queue="long", handler="demo_echo", max_running_per_organization=2)
	((organization, user),) = orgs()
	running, queued = _submit_many(user, job_type, 2, organization)
	frappe.db.sql("UPDATE `tabBackground Job` SET status = 'Running' WHERE name = %s", running)
	frappe.db.commit()
	finishing_worker = pymysql.connect(**side_channel.connection_params())
	try:
		with finishing_worker.cursor() as cursor:
			cursor.execute("BEGIN")
			cursor.execute("UPDATE `tabBackground Job` SET status = 'Completed' WHERE name = %s", (running,))
		queued_row = frappe._dict(name=queued, organization=organization, job_type=job_type)
		started = time.monotonic()
		assert organization_caps.at_cap(queued_row, "long", settings.engine_state())
		assert time.monotonic() - started < 2
		# Where the server undoes the whole transaction on a lock wait timeout (its setting, read once
		# per process, taken here as ON), the count raises rather than carry on as if the caller's
		# earlier writes in that transaction were still pending.
		lock_waits._undoes_transaction[frappe.local.site] = True
		try:
			with pytest.raises(frappe.QueryTimeoutError):
				organization_caps.at_cap(queued_row, "long", settings.engine_state())
		finally:
			lock_waits._undoes_transaction.pop(frappe.local.site)
		frappe.db.rollback()
		finishing_worker.rollback()
		# Once that worker is done, the slot counts as it is: one running of two allowed.
		assert not organization_caps.at_cap(queued_row, "long", settings.engine_state())
	finally:
		frappe.db.rollback()
		finishing_worker.close()


def test_a_queue_listed_twice_among_the_caps_is_refused(queue_cap):
	settings = frappe.get_single("Background Job Settings")
	settings.set("organization_caps", [])
	for cap in (1, 2):
		settings.append("organization_caps", {"queue": "long", "max_running_per_organization": cap})
	with pytest.raises(frappe.ValidationError):
		settings.save(ignore_permissions=True)
	frappe.db.rollback()
	assert not frappe.get_all("Queue Organization Cap", filters={"queue": "long"})


def slow_frappe_job(seconds: float) -> None:
	"""A job of Frappe's own kind (plain ``frappe.enqueue``), as the scheduler queues them."""
	time.sleep(seconds)


def test_a_due_retry_starts_on_time_behind_frappes_own_jobs_on_one_worker(org, job_type_factory):
	from dartwing.tests.integration.test_upkeep import UpkeepRunner

	flaky = job_type_factory(
		handler="demo_fail", max_retries=1, backoff_strategy="Schedule", backoff_schedule="15"
	)
	retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
	assert helpers.run_burst_worker(queues=("default",)).returncode == 0
	due = helpers.job(retried).next_retry_utc
	assert helpers.job(retried).status == states.RETRYING and due
	# Frappe's own jobs fill the worker's queue well past the retry's due time (30 s of work: the
	# worker may start on them as soon as 2 s after the failure, 13 s before the retry is due).
	for _ in range(20):
		frappe.enqueue(f"{__name__}.slow_frappe_job", queue="default", seconds=1.5)
	frappe.db.commit()

	with UpkeepRunner(), helpers.Worker(queues=("default",)):
		row = helpers.wait_for_status(retried, states.COMPLETED, timeout=60)
	late = (clock.site_to_utc(row.started_at) - due).total_seconds()
	# The worker finishes the Frappe job it is on (1.5 s) and takes the retry's wake-up next.
	assert late <= 3, late
	assert get_queue("default").count >= 3, "Frappe's jobs were not behind the retry"


def queue_jobs_on_this_site(count: int, queue: str) -> dict:
	"""Run in a site by ``bench --site S execute``: ``count`` jobs of a fresh job type on ``queue``."""
	job_type = helpers.make_job_type(queue=queue)
	organization = helpers.make_org(members=["Administrator"])
	jobs = [submit(job_type, {"n": n}, organization=organization)["job_id"] for n in range(count)]
	frappe.db.commit()
	return {"jobs": jobs}


def started_on_this_site(jobs: list[str]) -> dict:
	"""Run by ``bench --site S execute``: each job's start (UTC, ISO) or None."""
	rows = frappe.get_all("Background Job", filters={"name": ("in", jobs)}, fields=["name", "started_at"])
	return {
		row.name: clock.site_to_utc(row.started_at).isoformat() if row.started_at else None for row in rows
	}


def _bench(*args: str, stdin: str | None = None) -> str:
	done = subprocess.run(
		[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", *args],
		cwd=helpers.SITES_PATH,
		input=stdin,
		capture_output=True,
		text=True,
		timeout=900,
	)
	assert done.returncode == 0, f"bench {' '.join(args[:3])}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
	return done.stdout


def _execute(site: str, method: str, **kwargs) -> dict:
	out = _bench("--site", site, "execute", f"{__name__}.{method}", "--kwargs", json.dumps(kwargs))
	return json.loads(out[out.index("{") :])


@pytest.fixture
def second_site():
	"""A second site on this bench with Dartwing installed, dropped afterwards."""
	site = f"second-{frappe.local.site}"
	root_password = os.environ.get("DARTWING_DB_ROOT_PASSWORD", "") + "\n"
	_bench(
		"new-site", site, "--force", "--admin-password", "admin", "--db-root-username", "root",
		"--install-app", "dartwing", stdin=root_password,
	)  # fmt: skip
	try:
		yield site
	finally:
		_bench(
			"drop-site", site, "--force", "--no-backup", "--db-root-username", "root",
			"--archived-sites-path", os.path.join(helpers.SITES_PATH, "..", "archived_sites"),
			stdin=root_password,
		)  # fmt: skip


def test_two_sites_take_turns_on_one_worker(job_type_factory, second_site):
	job_type = job_type_factory(queue="long")
	organization = helpers.make_org(members=["Administrator"])
	try:
		flood = [submit(job_type, {"n": n}, organization=organization)["job_id"] for n in range(400)]
		frappe.db.commit()
		other = _execute(second_site, "queue_jobs_on_this_site", count=1, queue="long")["jobs"]

		helpers.run_burst_worker(queues=("long",), timeout=600)
		other_start = _execute(second_site, "started_on_this_site", jobs=other)[other[0]]
		assert other_start, "the second site's job did not run"
		flood_starts = started_on_this_site(flood)
		ahead = sum(1 for start in flood_starts.values() if start and start < other_start)
		assert ahead <= 20, ahead
	finally:
		helpers.cleanup_org(organization)


def note_frappe_job_start(key: str, organization: str) -> None:
	"""A job of Frappe's own kind that notes when it started and how many Dartwing jobs still waited."""
	waiting = frappe.db.count("Background Job", {"organization": organization, "status": states.QUEUED})
	frappe.cache.set_value(key, {"started": time.time(), "waiting": waiting}, expires_in_sec=600)


def test_frappes_own_jobs_start_while_a_backlog_drains_on_one_worker(org, job_type_factory):
	job_type = job_type_factory()
	backlog = _submit_many(org.user, job_type, 1500, org.name)
	key = f"dartwing-test-frappe-job-{frappe.generate_hash(length=8)}"
	with helpers.Worker(queues=("default",)):
		helpers.wait_for(
			lambda: (
				frappe.db.count("Background Job", {"organization": org.name, "status": states.COMPLETED})
				>= 50
			),
			timeout=60,
			message="the backlog to be draining",
		)
		enqueued = time.time()
		frappe.enqueue(f"{__name__}.note_frappe_job_start", queue="default", key=key, organization=org.name)
		started = helpers.wait_for(
			lambda: frappe.cache.get_value(key, expires=True), timeout=60, message="Frappe's job"
		)
	assert started["started"] - enqueued <= 10, started["started"] - enqueued
	# It did not wait for the backlog: most of it still waited when Frappe's job ran.
	assert started["waiting"] >= len(backlog) // 2, started


def test_operators_see_each_organizations_queued_running_and_oldest_wait(orgs, job_type_factory):
	from dartwing.dartwing_core.background_jobs import metrics
	from dartwing.dartwing_core.report.organization_usage import organization_usage

	job_type = job_type_factory(queue="long")
	(busy, user_a), (quiet, user_b) = orgs() + orgs()
	_submit_many(user_a, job_type, 3, busy)
	_submit_many(user_b, job_type, 1, quiet)
	time.sleep(1)

	usage = {entry["organization"]: entry for entry in metrics.queue_stats()["organizations"]}
	assert (usage[busy]["queued"], usage[busy]["running"]) == (3, 0)
	assert usage[quiet]["queued"] == 1 and usage[quiet]["oldest_wait_seconds"] >= 1
	bounded = metrics.organization_usage(top=1)
	assert len(bounded) == 2 and bounded[-1]["organization"] == "other" and bounded[-1]["queued"] >= 1
	scrape = metrics.prometheus_text().decode()
	assert f'dartwing_organization_jobs{{organization="{busy}",status="Queued"}} 3.0' in scrape
	assert f'dartwing_organization_oldest_wait_seconds{{organization="{quiet}"}}' in scrape
	# Every organization's usage is for managers only.
	frappe.set_user(user_a)
	try:
		with pytest.raises(frappe.PermissionError):
			organization_usage.execute()
	finally:
		frappe.set_user("Administrator")
	assert organization_usage.execute()[1]


def test_a_site_dropped_from_the_bench_is_struck_off_the_waiting_sites(org, job_type_factory):
	"""A site noted waiting that is no longer on the bench (dropped while its tokens waited) stays in
	the waiting set only until a draining horse looks: it gets no wake-ups and takes no turns from
	the sites that are there."""
	from dartwing.dartwing_core.background_jobs import worker_sharing
	from dartwing.dartwing_core.background_jobs.tokens import waiting_sites_key

	job_type = job_type_factory()
	rq_queue = get_queue("default")
	key = waiting_sites_key(rq_queue.name)
	gone = f"dartwing-dropped-{frappe.generate_hash(length=6)}.localhost"
	jobs = _submit_many(org.user, job_type, 25, org.name)
	rq_queue.connection.zadd(key, {gone: time.time()})
	try:
		helpers.run_burst_worker(queues=("default",))
		waiting = {worker_sharing._text(site) for site in rq_queue.connection.zrange(key, 0, -1)}
		queued = [worker_sharing._text(job_id) for job_id in rq_queue.connection.lrange(rq_queue.key, 0, -1)]
	finally:
		rq_queue.connection.zrem(key, gone)
	assert gone not in waiting
	assert not [job_id for job_id in queued if job_id.startswith(gone)]
	frappe.db.rollback()
	assert {helpers.job(job).status for job in jobs} == {states.COMPLETED}
