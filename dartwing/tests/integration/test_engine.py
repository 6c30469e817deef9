"""Submit -> run -> done with real RQ worker processes: results, priorities, aging, dependencies,
run_at, concurrency keys, suspended organizations, at-least-once delivery."""

import os
import threading
import time
from datetime import timedelta
from itertools import pairwise

import frappe
from frappe.utils import add_to_date, now_datetime

from dartwing.dartwing_core.background_jobs import clock, dispatch, states
from dartwing.tests.integration import helpers


def test_submit_runs_on_a_real_worker_and_records_everything(org):
	result = helpers.submit_as(org.user, "demo_echo", {"hello": "world", "n": [1, 2]})
	assert result["status"] == states.QUEUED and result["deduplicated"] is False

	worker = helpers.run_burst_worker()
	assert worker.returncode == 0, worker.stderr[-2000:]

	job = helpers.job(result["job_id"])
	assert job.status == states.COMPLETED
	assert frappe.parse_json(job.result) == {"hello": "world", "n": [1, 2]}
	assert job.attempt == 1 and job.progress_percent == 100
	assert job.owner == org.user and job.organization == org.name
	assert job.queued_at <= job.started_at <= job.finished_at
	assert job.wait_time >= 0 and job.run_time > 0 and job.worker
	assert helpers.events(job.name) == ["Submitted", "Queued", "Started", "Completed"]


def test_a_second_delivery_of_a_token_is_a_no_op(org):
	job_id = helpers.submit_as(org.user, "demo_echo", {"twice": True})["job_id"]
	token, _ = dispatch.new_token_id(job_id)
	dispatch.push_many([(job_id, "short", token)])  # a duplicate wake-up for the same job
	frappe.db.commit()
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(job_id).status == states.COMPLETED
	assert helpers.events(job_id).count("Started") == 1
	assert helpers.events(job_id).count("Completed") == 1


def test_a_worker_woken_for_one_job_that_claims_another_whose_token_was_lost_still_wakes_one(org):
	"""A work horse woken for one job claims the queue's best job, and hands that job's waiting token
	on to the one it was woken for. Where that token is gone (Redis lost it; a worker popped it and
	died), the job gets a fresh token instead of a dead one: it runs now, not at the reaper's next
	pass. A Frappe job queued behind them makes the horse hand its worker back after the first job
	(it looks for them once a second)."""
	from frappe.utils.background_jobs import get_queue
	from rq.job import Job

	queue = get_queue("default")
	older = helpers.submit_as(org.user, "demo_sleep", {"seconds": 1.2, "steps": 1})["job_id"]
	lost_token = helpers.job(older).rq_job_id
	queue.remove(lost_token)
	Job.fetch(lost_token, connection=queue.connection).delete()
	newer = helpers.submit_as(org.user, "demo_sleep", {"seconds": 0, "steps": 1})["job_id"]
	frappe.enqueue("frappe.ping", queue="default")

	worker = helpers.run_burst_worker(["default"])
	assert worker.returncode == 0
	assert helpers.job(older).status == states.COMPLETED, (helpers.events(older), worker.stdout[-3000:])
	assert helpers.job(newer).status == states.COMPLETED, helpers.events(newer)
	assert helpers.job(older).started_at < helpers.job(newer).started_at


def test_a_worker_loads_the_engine_before_it_forks_its_work_horses():
	"""``bench worker`` imports the work horse's code in its own process (``commands``), so every
	horse it forks starts with it; other bench commands do not pay for it. The worker here finds
	its queue empty and forks nothing: what it imported, it imported itself."""
	import subprocess

	from frappe.utils.background_jobs import get_queue

	from dartwing.processes import frappe_cli

	get_queue("long").empty()

	def imports(*command: str) -> str:
		return subprocess.run(
			frappe_cli(frappe.local.site, *command),
			cwd=helpers.SITES_PATH,
			capture_output=True,
			text=True,
			timeout=120,
			env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
		).stderr

	executor = "dartwing.dartwing_core.background_jobs.executor"
	assert executor in imports("worker", "--burst", "--queue", "long")
	assert executor not in imports("list-apps")


def test_a_drain_takes_the_tokens_of_the_jobs_it_runs_out_of_rqs_queue(org):
	"""A horse draining the queue takes each job's token out of RQ's list (it is at the head), so
	the worker does not pop dead ids after it, nor keep them in the queue's ``:intermediate`` list
	(a worker listening on one queue moves each id it pops there) for RQ's maintenance."""
	from frappe.utils.background_jobs import get_queue

	jobs = [helpers.submit_as(org.user, "demo_echo", {"i": i})["job_id"] for i in range(20)]
	tokens = {helpers.job(name).rq_job_id for name in jobs}
	queue = get_queue("short")

	assert helpers.run_burst_worker(["short"]).returncode == 0
	assert {helpers.job(name).status for name in jobs} == {states.COMPLETED}
	left = {
		token.decode()
		for key in (queue.key, queue.intermediate_queue_key)
		for token in queue.connection.lrange(key, 0, -1)
	}
	assert not tokens & left


def test_a_draining_horse_reads_the_engine_state_once_a_second_not_once_a_job(org):
	"""Within a drain the engine state snapshot is reused for ``READ_ONCE_SECONDS``: 40 jobs cost a
	read or two of it from Redis, not one a job (seen in Redis's own command stream)."""
	from dartwing.dartwing_core.background_jobs import settings

	jobs = [helpers.submit_as(org.user, "demo_echo", {"i": i})["job_id"] for i in range(40)]
	key = frappe.cache.make_key(settings._CACHE_KEY).decode()
	reads, done = [], threading.Event()

	def watch(monitor):
		while not done.is_set():
			command = monitor.next_command()["command"]
			if command.startswith("GET ") and key in command:
				reads.append(command)

	with frappe.cache.monitor() as monitor:
		watcher = threading.Thread(target=watch, args=(monitor,), daemon=True)
		watcher.start()
		started = time.monotonic()
		assert helpers.run_burst_worker(["short"]).returncode == 0
		seconds = time.monotonic() - started
		done.set()
		frappe.cache.ping()  # wakes the watcher
		watcher.join(timeout=10)
	assert {helpers.job(name).status for name in jobs} == {states.COMPLETED}
	assert 1 <= len(reads) <= seconds / settings.READ_ONCE_SECONDS + 2 < len(jobs)


def test_a_drain_commits_each_job_and_begins_the_next_transaction_in_one_statement(org):
	"""The drain loop (``executor.run_next``, here in this process) commits each job's outcome with
	the next claim and starts the next transaction in the same statement (MariaDB's own session
	counters: a commit a job, no START TRANSACTION a job); what it commits is there for others."""
	import pymysql

	from dartwing.dartwing_core.background_jobs import executor, side_channel

	def session_counts() -> dict:
		return {
			name: int(value)
			for name, value in frappe.db.sql(
				"SHOW SESSION STATUS WHERE Variable_name IN ('Com_begin', 'Com_commit')"
			)
		}

	jobs = [helpers.submit_as(org.user, "demo_echo", {"i": i})["job_id"] for i in range(12)]
	frappe.db.commit()
	before = session_counts()
	try:
		ran = executor.run_next(None, "short")
		after = session_counts()
	finally:
		helpers.drain_queues()
	assert set(jobs) <= set(ran)
	assert after["Com_commit"] - before["Com_commit"] >= len(ran)
	assert after["Com_begin"] - before["Com_begin"] <= 3, (before, after)
	other = pymysql.connect(**side_channel.connection_params())
	try:
		with other.cursor() as cursor:
			cursor.execute("SELECT DISTINCT status FROM `tabBackground Job` WHERE name IN %s", (jobs,))
			assert cursor.fetchall() == ((states.COMPLETED,),)
	finally:
		other.close()


def test_where_frappe_holds_commits_back_the_drains_commit_is_frappes_own(monkeypatch):
	"""Newer Frappe can hold commits back (``_disable_transaction_control``): the drain's one-statement
	commit then leaves the decision to ``frappe.db.commit`` (here v15's: COMMIT, START TRANSACTION)."""
	from dartwing.dartwing_core.background_jobs import executor

	def begun() -> int:
		return int(frappe.db.sql("SHOW SESSION STATUS LIKE 'Com_begin'")[0][1])

	before = begun()
	executor._commit_and_begin()
	assert begun() == before
	monkeypatch.setattr(frappe.db, "_disable_transaction_control", 1, raising=False)
	executor._commit_and_begin()
	assert begun() == before + 1


def test_higher_priority_runs_first_within_a_queue(org):
	low = [helpers.submit_as(org.user, "demo_echo", {"i": i}, priority="Low")["job_id"] for i in range(3)]
	high = [helpers.submit_as(org.user, "demo_echo", {"i": i}, priority="High")["job_id"] for i in range(3)]
	critical = helpers.submit_as(org.user, "demo_echo", {"i": 9}, priority="Critical")["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	order = [name for name, in frappe.db.sql(
		"SELECT name FROM `tabBackground Job` WHERE name IN %s ORDER BY started_at", ([*low, *high, critical],)
	)]  # fmt: skip
	assert order[0] == critical
	assert set(order[1:4]) == set(high)
	assert set(order[4:]) == set(low)


def test_aging_lets_a_long_waiting_low_job_overtake(org):
	old_low = helpers.submit_as(org.user, "demo_echo", {"old": 1}, priority="Low")["job_id"]
	aging = frappe.db.get_single_value("Background Job Settings", "aging_seconds") or 120
	# Waiting 4 aging intervals lifts Low above a fresh Critical (its claim key moves with it).
	waited = 4 * aging + 5
	frappe.db.sql(
		"""UPDATE `tabBackground Job` SET queued_at = queued_at - INTERVAL %(s)s SECOND,
		claim_order = claim_order - %(s)s WHERE name = %(job)s""",
		{"s": waited, "job": old_low},
	)
	frappe.db.commit()
	fresh_critical = helpers.submit_as(org.user, "demo_echo", {"new": 1}, priority="Critical")["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(old_low).started_at < helpers.job(fresh_critical).started_at


def test_child_waits_for_all_parents_then_runs(org):
	parent_a = helpers.submit_as(org.user, "demo_echo", {"p": "a"})["job_id"]
	parent_b = helpers.submit_as(org.user, "demo_sleep", {"seconds": 0.2, "steps": 1})["job_id"]
	child = helpers.submit_as(org.user, "demo_echo", {"c": 1}, depends_on=[parent_a, parent_b])
	assert child["status"] == states.PENDING
	assert helpers.run_burst_worker().returncode == 0
	child_row = helpers.job(child["job_id"])
	assert child_row.status == states.COMPLETED
	assert child_row.started_at >= max(helpers.job(parent_a).finished_at, helpers.job(parent_b).finished_at)


def test_a_child_submitted_while_its_parent_runs_is_released_when_the_parent_ends(org):
	"""The worker read the parent's row (no dependents) when it claimed it; the child comes after.
	Its end must still release the child, with no upkeep pass to help."""
	parent = helpers.submit_as(org.user, "demo_sleep", {"seconds": 2, "steps": 2})["job_id"]
	with helpers.Worker():
		helpers.wait_for_status(parent, states.RUNNING)
		assert not helpers.job(parent).has_dependents
		child = helpers.submit_as(org.user, "demo_echo", {"after": parent}, depends_on=parent)
		assert child["status"] == states.PENDING
		assert helpers.job(parent).has_dependents
		child_row = helpers.wait_for_status(child["job_id"], states.COMPLETED, timeout=30)
	parent_row = helpers.job(parent)
	assert parent_row.status == states.COMPLETED and child_row.started_at >= parent_row.finished_at
	assert helpers.events(parent) == ["Submitted", "Queued", "Started", "Completed"]


def test_a_child_of_a_finished_parent_runs_at_once_and_a_failed_parent_fails_it(org):
	done = helpers.submit_as(org.user, "demo_echo", {"p": 1})["job_id"]
	failed = helpers.submit_as(org.user, "demo_fail", {"error": "permanent"})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.submit_as(org.user, "demo_echo", {"c": 1}, depends_on=done)["status"] == states.QUEUED
	orphan = helpers.submit_as(org.user, "demo_echo", {"c": 2}, depends_on=failed)
	assert orphan["status"] == states.FAILED
	assert helpers.job(done).has_dependents and helpers.job(failed).has_dependents


def test_the_upgrade_patch_marks_the_jobs_others_wait_for(org):
	from dartwing.patches.v0_3 import mark_jobs_with_dependents

	later = add_to_date(now_datetime(), hours=1)
	parent = helpers.submit_as(org.user, "demo_echo", {"p": 3}, run_at=later)["job_id"]
	child = helpers.submit_as(org.user, "demo_echo", {"c": 3}, depends_on=parent)["job_id"]
	# As a site upgraded from before the flag has them.
	frappe.db.sql("UPDATE `tabBackground Job` SET has_dependents = 0 WHERE name IN %s", ((parent, child),))
	mark_jobs_with_dependents.execute()
	assert helpers.job(parent).has_dependents and not helpers.job(child).has_dependents
	frappe.db.rollback()


def test_a_failed_parent_fails_its_dependents_down_the_chain(org):
	parent = helpers.submit_as(org.user, "demo_fail", {"error": "permanent"})["job_id"]
	child = helpers.submit_as(org.user, "demo_echo", {"c": 2}, depends_on=parent)["job_id"]
	grandchild = helpers.submit_as(org.user, "demo_echo", {"g": 3}, depends_on=[child])["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(parent).status == states.FAILED
	for name in (child, grandchild):
		row = helpers.job(name)
		assert row.status == states.FAILED and row.error_type == "DependencyFailed"
		assert row.started_at is None


def test_run_at_in_the_future_waits_until_due(org):
	result = helpers.submit_as(
		org.user, "demo_echo", {"later": 1}, run_at=add_to_date(now_datetime(), hours=1)
	)
	assert result["status"] == states.PENDING
	assert dispatch.dispatch_pending() == 0
	frappe.db.set_value(
		"Background Job", result["job_id"], "run_at_utc", clock.utc_now() - timedelta(seconds=1)
	)
	frappe.db.commit()
	assert dispatch.dispatch_pending() == 1
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(result["job_id"]).status == states.COMPLETED


def test_concurrency_key_limit_one_never_overlaps_across_workers(org, job_type_factory):
	keyed = job_type_factory(handler="demo_sleep", concurrency_key_template="{account}", concurrency_limit=1)
	same_key = [
		helpers.submit_as(org.user, keyed, {"account": "a", "seconds": 0.6, "steps": 2, "i": i})["job_id"]
		for i in range(3)
	]
	other_key = helpers.submit_as(org.user, keyed, {"account": "b", "seconds": 0.6, "steps": 2})["job_id"]
	assert [helpers.job(n).status for n in same_key] == [states.QUEUED, states.PENDING, states.PENDING]
	assert helpers.job(other_key).status == states.QUEUED

	with helpers.Worker(), helpers.Worker():
		for name in [*same_key, other_key]:
			helpers.wait_for_status(name, states.COMPLETED, timeout=60)

	spans = sorted((helpers.job(n).started_at, helpers.job(n).finished_at) for n in same_key)
	for (_, finished), (started, _) in pairwise(spans):
		assert started >= finished, "two jobs with the same key overlapped"


def test_jobs_of_a_suspended_organization_wait_then_run_when_reactivated(org):
	organization = frappe.get_doc("Organization", org.name)
	queued = helpers.submit_as(org.user, "demo_echo", {"s": 1})["job_id"]
	organization.status = "Suspended"
	organization.save(ignore_permissions=True)
	frappe.db.commit()
	assert helpers.job(queued).status == states.PENDING
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(queued).status == states.PENDING

	organization.reload()
	organization.status = "Active"
	organization.save(ignore_permissions=True)
	frappe.db.commit()
	assert helpers.job(queued).status == states.QUEUED
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(queued).status == states.COMPLETED
	assert "Paused" in helpers.events(queued) and "Resumed" in helpers.events(queued)


def test_checkpoint_and_progress_are_written_without_committing_the_handler(org):
	result = helpers.submit_as(org.user, "demo_sleep", {"seconds": 3, "steps": 3, "checkpoint": True})
	with helpers.Worker():
		seen = helpers.wait_for(
			lambda: (row := helpers.job(result["job_id"])).status == states.RUNNING
			and row.progress_percent > 0
			and row.checkpoint  # the handler reports progress, then saves its checkpoint
			and row,
			timeout=30,
			message="progress while running",
		)
		assert 0 < seen.progress_percent < 100 and seen.progress_message.startswith("step")
		assert frappe.parse_json(seen.checkpoint)["step"] >= 1
		helpers.wait_for_status(result["job_id"], states.COMPLETED)
	assert frappe.parse_json(helpers.job(result["job_id"]).checkpoint) == {"step": 3}


def test_one_work_horse_drains_a_backlog_and_takes_the_other_tokens_out_of_rq(org):
	from frappe.utils.background_jobs import get_queue

	jobs = [helpers.submit_as(org.user, "demo_echo", {"backlog": n})["job_id"] for n in range(5)]
	assert len(get_queue("short").job_ids) == 5
	assert helpers.run_burst_worker(queues=("short",)).returncode == 0
	rows = [helpers.job(job) for job in jobs]
	assert {row.status for row in rows} == {"Completed"}
	assert len({row.rq_job_id for row in rows}) == 1, "all five ran in the horse of the first token"
	assert get_queue("short").job_ids == [], "the other four tokens left RQ"


def _claim_while_another_transaction_holds(held: str, token_for: str | None, token_id: str, end):
	"""``claiming.claim`` while another connection holds the row of job ``held``; ``end`` (commit or
	rollback) ends the claim's transaction before the row is let go. Returns (claimed, seconds)."""
	from dartwing.dartwing_core.background_jobs import claiming

	site, locked, release = frappe.local.site, threading.Event(), threading.Event()

	def hold():
		frappe.init(site=site, sites_path=helpers.SITES_PATH)
		try:
			frappe.connect()
			frappe.db.sql("SELECT name FROM `tabBackground Job` WHERE name = %s FOR UPDATE", held)
			locked.set()
			release.wait(30)
			frappe.db.rollback()
		finally:
			frappe.destroy()

	holder = threading.Thread(target=hold)
	holder.start()
	assert locked.wait(10)
	try:
		frappe.db.sql("SET SESSION innodb_lock_wait_timeout = 3")
		started = time.monotonic()
		claimed = claiming.claim("short", token_for=token_for, token_id=token_id)
		took = time.monotonic() - started
		end()
	finally:
		release.set()
		holder.join()
		frappe.db.sql("SET SESSION innodb_lock_wait_timeout = DEFAULT")
	return claimed, took


def test_a_claim_passes_over_the_best_job_while_another_transaction_holds_it_without_waiting(org):
	from dartwing.dartwing_core.background_jobs import claiming

	first = helpers.submit_as(org.user, "demo_echo", {"n": 1})["job_id"]
	second = helpers.submit_as(org.user, "demo_echo", {"n": 2})["job_id"]
	claimed, took = _claim_while_another_transaction_holds(first, None, "test-token", frappe.db.commit)
	assert claimed.name == second and took < 1, f"the claim waited {took:.2f} s for the held job"
	assert helpers.job(first).status == states.QUEUED and helpers.job(second).status == states.RUNNING
	assert helpers.job(second).attempt == 1 and helpers.job(second).rq_job_id == "test-token"
	again = claiming.claim("short", token_for=None, token_id="test-token-2")
	frappe.db.commit()
	assert again.name == first, "the job held meanwhile is claimed once it is free"


def test_a_claim_does_not_wait_for_a_job_another_worker_is_claiming(org):
	"""Handing the token over to a job whose row another claim holds is skipped, not waited for."""
	first = helpers.submit_as(org.user, "demo_echo", {"n": 1})["job_id"]
	second = helpers.submit_as(org.user, "demo_echo", {"n": 2})["job_id"]
	token_of_second = helpers.job(second).rq_job_id
	claimed, took = _claim_while_another_transaction_holds(
		second, second, token_of_second, frappe.db.rollback
	)
	assert claimed.name == first
	assert took < 2, "the claim waited for the other worker's lock"
	assert helpers.job(second).rq_job_id == token_of_second, "no hand-over to a row it could not lock"
