"""The benchmark suite: the engine side by side with raw ``frappe.enqueue`` on the same bench, in one run.

Run on a bench whose own workers are stopped (the suite starts its own)::

	bench --site SITE execute dartwing.benchmarks.suite.run --kwargs "{'repeat': 3}"
	bench --site SITE execute dartwing.benchmarks.suite.run --kwargs "{'sections': 'growth,claim'}"

It prints markdown tables (median and spread over ``repeat`` runs where it repeats), one section
each; ``sections`` picks some of them by name (``SECTIONS``), in the order given:
1. ``throughput``: trivial-job throughput, raw ``frappe.enqueue("frappe.ping")`` vs the engine
   (``demo_echo``), with 1 and 2 burst workers;
2. ``submit``: ``submit`` cost vs a document insert + ``frappe.enqueue`` (p50/p95), and
   submit-to-start with one idle worker;
3. ``dedup``: 200 concurrent identical submits: jobs created and wall time;
4. ``growth``: with 1k, 10k, 100k and 1M jobs in the table (generated in bulk with MariaDB's
   sequence engine, spread over 30 days): the metrics rollups' backfill and a refresh after it,
   ``get_job_metrics`` over 24 hours, 7 and 30 days, the Job Type Health report over 30 days and
   the workspace's cards and charts (``api.desk``), beside the raw scan the metrics made before
   the rollups (30 days); and submit latency;
5. ``retry``: one retry-queue tick with 1k, 10k and 100k due jobs, and with 10k due beside 100k
   and 1M other jobs;
6. ``lateness``: how long after its due time a job starts, for retries after 1 s, 5 s and 30 s,
   ``run_at`` and a cron schedule, with the upkeep runner and one worker (as ``bench start`` has
   them), idle and while another worker is busy on another queue (also ``run_lateness``);
7. ``claim``: the claim of the next job with 1k, 10k, 100k and 1M jobs queued in one queue: the
   claim's candidate query and a whole claim, beside the query the claim ran before
   ``claim_order`` (priority with aging computed per row and sorted), in the same run (also
   ``run_claim``);
8. ``reaper``: the reaper's lost-token check with 1k, 10k and 100k Queued jobs whose tokens RQ
   holds: one pass as every minute (bounded) and one pass after Redis lost its data (all);
9. ``upkeep``: one upkeep pass (between full sweeps) with 100,000 jobs each Pending with ``run_at``
   tomorrow, Retrying until tomorrow, and Queued (also in ``run_lateness``).
10. ``backlog``: throughput over the first 200 jobs from a 200-job and a 100,000-job backlog, raw
   ``frappe.enqueue`` beside the engine, 1 and 2 workers (worker boot left out; median of
   ``repeat``);
11. ``horse_memory``: one worker drains 10,000 jobs; its work horses' memory along the way.
Everything it creates is deleted afterwards.
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import frappe
from frappe.utils.background_jobs import get_queue

from dartwing.dartwing_core.background_jobs import (
	clock,
	metrics,
	metrics_rollup,
	priority,
	retry_queue,
	settings,
	states,
	upkeep,
)
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.processes import frappe_cli

BENCH_PREFIX = "BENCH"
# Workers run as on a normal bench: Python may cache bytecode (a shell may have turned that off).
WORKER_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
QUEUES = ("short", "default", "long")


def _percentile(values: list[float], pct: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _spread(values: list[float]) -> str:
	return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def _drain() -> None:
	for name in QUEUES:
		get_queue(name).empty()


def _burst_workers(count: int) -> float:
	"""Start ``count`` burst workers on the short queue; seconds until the last one exits."""
	started = time.perf_counter()
	workers = [
		subprocess.Popen(
			frappe_cli(frappe.local.site, "worker", "--burst", "--queue", "short"),
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
			env=WORKER_ENV,
		)
		for _ in range(count)
	]
	for worker in workers:
		worker.wait(timeout=1800)
	return time.perf_counter() - started


def throughput(organization: str, jobs: int, workers: int) -> tuple[float, float]:
	"""Jobs per second through raw frappe.enqueue, then through the engine, same workers."""
	_drain()
	for _ in range(jobs):
		frappe.enqueue("frappe.ping", queue="short")
	raw = jobs / _burst_workers(workers)

	for i in range(jobs):
		submit("demo_echo", {"throughput": i, "at": time.time()}, organization=organization)
		if i % 50 == 49:
			frappe.db.commit()
	frappe.db.commit()
	engine = jobs / _burst_workers(workers)
	frappe.db.rollback()
	done = frappe.db.count("Background Job", {"organization": organization, "status": states.COMPLETED})
	left = frappe.db.count(
		"Background Job", {"organization": organization, "status": ("!=", states.COMPLETED)}
	)
	if left:
		print(f"  warning: {left} engine jobs did not complete ({done} did)")
	_delete_org_jobs(organization)
	return raw, engine


def submit_cost(organization: str, calls: int) -> tuple[list[float], list[float]]:
	baseline, engine = [], []
	for i in range(calls):
		started = time.perf_counter()
		frappe.get_doc({"doctype": "ToDo", "description": "dartwing benchmark baseline"}).insert(
			ignore_permissions=True
		)
		frappe.enqueue("frappe.ping", queue="short", enqueue_after_commit=True)
		frappe.db.commit()
		baseline.append(time.perf_counter() - started)

		started = time.perf_counter()
		submit("demo_echo", {"cost": i}, organization=organization)
		frappe.db.commit()
		engine.append(time.perf_counter() - started)
	frappe.db.delete("ToDo", {"description": "dartwing benchmark baseline"})
	frappe.db.commit()
	_drain()
	_delete_org_jobs(organization)
	return baseline, engine


def submit_to_start(
	organization: str, samples: int = 50, gap: float = 0.5
) -> tuple[list[float], list[float]]:
	"""Seconds from submit to start with one idle worker waiting, and the recorded run times."""
	_drain()
	worker = subprocess.Popen(
		frappe_cli(frappe.local.site, "worker", "--queue", "short"),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
		env=WORKER_ENV,
	)
	time.sleep(5)  # let the worker boot before the first submit
	measured = []
	try:
		for i in range(samples):
			measured.append(submit("demo_echo", {"start": i}, organization=organization)["job_id"])
			frappe.db.commit()
			time.sleep(gap)
		deadline = time.monotonic() + 120
		while time.monotonic() < deadline:
			frappe.db.rollback()
			done = frappe.db.count("Background Job", {"name": ("in", measured), "status": states.COMPLETED})
			if done == len(measured):
				break
			time.sleep(0.2)
	finally:
		os.killpg(worker.pid, signal.SIGTERM)
		worker.wait(timeout=60)
	rows = frappe.db.sql(
		"""SELECT TIMESTAMPDIFF(MICROSECOND, creation, started_at) / 1e6, run_time FROM `tabBackground Job`
		WHERE name IN %s AND status = 'Completed'""",
		(tuple(measured),),
	)
	_delete_org_jobs(organization)
	return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def concurrent_identical(organization: str, job_type: str, callers: int = 200) -> tuple[int, float]:
	site, sites_path = frappe.local.site, frappe.local.sites_path
	errors = []

	def one(barrier):
		frappe.init(site=site, sites_path=sites_path)
		try:
			frappe.connect()
			frappe.set_user("Administrator")
			barrier.wait(timeout=120)
			submit(job_type, {"same": True}, organization=organization)
			frappe.db.commit()
		except Exception as exc:
			errors.append(exc)
		finally:
			frappe.destroy()

	started = time.perf_counter()
	# MariaDB's default max_connections is 151: 120 callers race at once, then the rest.
	for wave in (min(callers, 120), max(callers - 120, 0)):
		if not wave:
			continue
		barrier = threading.Barrier(wave)
		with ThreadPoolExecutor(max_workers=wave) as pool:
			for _ in range(wave):
				pool.submit(one, barrier)
	wall = time.perf_counter() - started
	frappe.db.rollback()
	created = frappe.db.count("Background Job", {"organization": organization, "job_type": job_type})
	if errors:
		print(f"  {len(errors)} callers failed, e.g. {errors[0]!r}")
	_drain()
	_delete_org_jobs(organization)
	return created, wall


def generate_jobs(organization: str, start: int, end: int) -> None:
	"""Rows ``start+1 .. end`` of finished and waiting jobs, spread over 30 days, in one statement."""
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, started_at, finished_at, wait_time, run_time,
			correlation_id)
		SELECT CONCAT('{BENCH_PREFIX}-', seq), created, created, 'Administrator', 'Administrator', 0,
			ELT(1 + seq %% 4, 'demo_echo', 'demo_sleep', 'demo_fail', 'demo_http'), %(organization)s,
			ELT(1 + seq %% 20, 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed',
				'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed',
				'Failed', 'Dead Letter', 'Timed Out', 'Canceled', 'Queued', 'Pending', 'Retrying'),
			ELT(1 + seq %% 4, 'Low', 'Normal', 'High', 'Critical'),
			ELT(1 + seq %% 3, 'short', 'default', 'long'), '{{}}', MD5(seq), 1, 3, 60,
			created, created + INTERVAL 1 SECOND, created + INTERVAL 3 SECOND, (seq %% 1000) / 100, (seq %% 700) / 100,
			MD5(seq)
		FROM (SELECT seq, %(now)s - INTERVAL (seq %% 43200) MINUTE AS created FROM seq_{start + 1}_to_{end}) generated""",
		{"organization": organization, "now": frappe.utils.now_datetime()},
	)
	frappe.db.commit()


def _timed(call, calls: int) -> list[float]:
	"""Milliseconds of each of ``calls`` calls."""
	timings = []
	for _ in range(calls):
		started = time.perf_counter()
		call()
		timings.append((time.perf_counter() - started) * 1000)
	return timings


def raw_metrics_scan(since) -> None:
	"""What ``job_metrics`` read before the rollups: the window's jobs, grouped, and the histograms."""
	where, values = "creation >= %(since)s", {"since": since}
	frappe.db.sql(
		f"""SELECT job_type, status, queue, priority, COUNT(*),
			SUM(finished_at IS NOT NULL AND finished_at >= %(since)s), SUM({metrics.RAN_SQL}),
			SUM(CASE WHEN {metrics.RAN_SQL} THEN run_time END), SUM(CASE WHEN {metrics.RAN_SQL} THEN wait_time END)
		FROM `tabBackground Job` WHERE {where} GROUP BY job_type, status, queue, priority""",
		values,
	)
	metrics.type_percentiles(where, values)


def workspace_figures() -> None:
	"""What the workspace asks for: its number card and its two charts."""
	from dartwing.dartwing_core.api import desk

	desk.failed_last_24h()
	desk.jobs_per_hour()
	desk.run_time_by_job_type()


def retry_tick(organization: str, due: int = 10_000) -> float:
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, next_retry_at, next_retry_utc, correlation_id)
		SELECT CONCAT('{BENCH_PREFIX}-RETRY-', seq), %(now)s, %(now)s, 'Administrator', 'Administrator', 0,
			'demo_echo', %(organization)s, 'Retrying', 'Normal', ELT(1 + seq %% 3, 'short', 'default', 'long'),
			'{{}}', MD5(seq), 1, 3, 60, %(now)s - INTERVAL 1 MINUTE, UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE, MD5(seq)
		FROM seq_1_to_{due}""",
		{"organization": organization, "now": frappe.utils.now_datetime()},
	)
	frappe.db.commit()
	started = time.perf_counter()
	queued = retry_queue.requeue_due_retries()
	took = time.perf_counter() - started
	if queued != due:
		print(f"  warning: the tick queued {queued} of {due}")
	_drain()
	frappe.db.sql(f"DELETE FROM `tabBackground Job` WHERE name LIKE '{BENCH_PREFIX}-RETRY-%%'")
	frappe.db.sql(
		"DELETE FROM `tabJob Execution Log` WHERE organization = %s AND event = 'Requeued'", organization
	)
	frappe.db.commit()
	return took


def _process(*args: str) -> subprocess.Popen:
	return subprocess.Popen(
		frappe_cli(frappe.local.site, *args),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
		env=WORKER_ENV,
	)


def _wait_until(predicate, timeout: float) -> bool:
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.db.rollback()
		if predicate():
			return True
		time.sleep(0.5)
	return False


RETRY_DELAYS = (1, 5, 30)


def lateness(
	organization: str,
	busy: bool,
	samples: int = 20,
	slow_samples: int = 8,
	schedules: int = 5,
	minutes: int = 2,
) -> dict[str, list[float]]:
	"""Seconds from due to start per kind of due work, with ``bench dartwing upkeep`` and one worker
	on short/default; ``busy``: a second worker runs one-second jobs on the long queue throughout."""
	site = frappe.local.site
	made_types, made_schedules, processes = [], [], []
	try:
		for delay in RETRY_DELAYS:
			made_types.append(
				frappe.get_doc(
					{
						"doctype": "Job Type",
						"job_type_name": f"bench_retry_{delay}_{frappe.generate_hash(length=4)}",
						"title": f"bench retry {delay}",
						"handler": "demo_fail",
						"queue": "short",
						"max_retries": 1,
						"backoff_strategy": "Fixed",
						"backoff_base_seconds": delay,
					},
				)
				.insert(ignore_permissions=True)
				.name  # fmt: skip
			)
		busy_type = frappe.get_doc(
			{"doctype": "Job Type", "job_type_name": f"bench_busy_{frappe.generate_hash(length=4)}",
			 "title": "bench busy", "handler": "demo_sleep", "queue": "long"},
		).insert(ignore_permissions=True).name  # fmt: skip
		made_types.append(busy_type)
		for n in range(schedules):
			made_schedules.append(
				frappe.get_doc(
					{
						"doctype": "Job Schedule",
						"schedule_name": f"bench-lateness-{frappe.generate_hash(length=6)}",
						"job_type": "demo_echo",
						"organization": organization,
						"run_as": "Administrator",
						"cron_expression": "* * * * *",
						"time_zone": "UTC",
						"missed_run_policy": "Skip",
						"overlap_policy": "Allow",
						"parameters": {"schedule": n},
					},
				)
				.insert(ignore_permissions=True)
				.name  # fmt: skip
			)
		frappe.db.commit()
		_drain()
		from frappe.utils.background_jobs import get_redis_conn

		get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
		processes.append(_process("dartwing", "upkeep", "--only", site))
		processes.append(_process("worker", "--queue", "short,default"))
		if busy:
			for i in range(60 * (minutes + 2)):
				submit(busy_type, {"seconds": 1, "steps": 1, "i": i}, organization=organization)
			frappe.db.commit()
			processes.append(_process("worker", "--queue", "long"))
		_wait_until(lambda: (upkeep.last_pass() or {}).get("at", 0) > time.time() - 1, 60)
		time.sleep(5)  # let the workers boot

		started = clock.utc_now()
		retries, later = [], []
		for i in range(samples):
			for delay in RETRY_DELAYS[:2]:
				retries.append(submit(made_types[RETRY_DELAYS.index(delay)], {"fail_times": 1, "i": i},
					organization=organization)["job_id"])  # fmt: skip
			if i < slow_samples:
				retries.append(
					submit(made_types[2], {"fail_times": 1, "i": i}, organization=organization)["job_id"]
				)
			run_at = clock.site_now() + timedelta(seconds=2 + random.random() * 5)
			later.append(
				submit(
					"demo_echo", {"later": i, "at": time.time()}, organization=organization, run_at=run_at
				)["job_id"]
			)
			frappe.db.commit()
			time.sleep(0.25)
		measured = retries + later
		_wait_until(
			lambda: frappe.db.count("Background Job", {"name": ("in", measured), "status": states.COMPLETED})
			== len(measured),
			240,
		)
		first_fire = frappe.db.get_value("Job Schedule", made_schedules[0], "next_run_utc")
		_wait_until(
			lambda: clock.utc_now() > first_fire + timedelta(minutes=minutes - 1, seconds=20),
			60 * minutes + 60,
		)
		_wait_until(
			lambda: frappe.db.count("Background Job", {"job_schedule": ("in", made_schedules), "status": ("!=", states.COMPLETED)}) == 0,
			60,
		)  # fmt: skip
	finally:
		for process in processes:
			os.killpg(process.pid, signal.SIGTERM)
		for process in processes:
			process.wait(timeout=60)
		frappe.db.rollback()
		for name in made_schedules:
			frappe.db.set_value("Job Schedule", name, "enabled", 0)
		frappe.db.commit()

	result = {}
	for delay, job_type in zip(RETRY_DELAYS, made_types, strict=False):
		rows = frappe.db.sql(
			"""SELECT TIMESTAMPDIFF(MICROSECOND, log.timestamp, job.started_at) / 1e6 - %(delay)s
			FROM `tabBackground Job` job JOIN `tabJob Execution Log` log
				ON log.job = job.name AND log.event = 'Retry Scheduled'
			WHERE job.job_type = %(job_type)s AND job.organization = %(organization)s
				AND job.status = 'Completed' AND job.attempt = 2""",
			{"delay": delay, "job_type": job_type, "organization": organization},
		)
		result[f"retry after {delay} s"] = [float(r[0]) for r in rows]
	result["run_at"] = [
		float(r[0])
		for r in frappe.db.sql(
			"""SELECT TIMESTAMPDIFF(MICROSECOND, run_at, started_at) / 1e6 FROM `tabBackground Job`
			WHERE name IN %s AND status = 'Completed'""",
			(tuple(later),),
		)
	]
	result["cron * * * * *"] = [
		float(r[0])
		for r in frappe.db.sql(
			"""SELECT TIMESTAMPDIFF(MICROSECOND, scheduled_for, started_at) / 1e6 FROM `tabBackground Job`
			WHERE job_schedule IN %s AND status = 'Completed' AND creation >= %s""",
			(tuple(made_schedules), clock.utc_to_site(started)),
		)
	]
	for name in made_schedules:
		frappe.db.sql("DELETE FROM `tabBackground Job` WHERE job_schedule = %s", name)
		frappe.db.delete("Job Schedule", {"name": name})
	_drain()
	_delete_org_jobs(organization)
	for name in made_types:
		frappe.delete_doc("Job Type", name, ignore_permissions=True, force=True)
	frappe.db.commit()
	return result


def print_lateness(organization: str) -> None:
	print("\n### 6. Lateness of due work (s from due to start; upkeep runner + one worker)\n")
	print("| workers | due work | n | p50 | p95 | max |")
	print("|---|---|---|---|---|---|")
	for busy in (False, True):
		label = "busy: another worker runs 1 s jobs on long" if busy else "idle"
		for kind, values in lateness(organization, busy).items():
			if not values:
				print(f"| {label} | {kind} | 0 | - | - | - |", flush=True)
				continue
			print(
				f"| {label} | {kind} | {len(values)} | {statistics.median(values):.2f} | "
				f"{_percentile(values, 95):.2f} | {max(values):.2f} |",
				flush=True,
			)


CLAIM_QUEUE = "dartwing-bench-claim"


def generate_queued(organization: str, start: int, end: int) -> None:
	"""Queued jobs ``start+1 .. end`` of one queue, mixed priorities, queued over the last 30 days,
	with the claim key the engine gives them (``priority.claim_key``), in one statement."""
	aging = max(settings.get_settings().aging_seconds, 1)
	offset = round((clock.utc_now() - clock.site_now()).total_seconds())
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, claim_order, correlation_id, rq_job_id)
		SELECT CONCAT('{BENCH_PREFIX}-Q-', seq), queued, queued, 'Administrator', 'Administrator', 0,
			'demo_echo', %(organization)s, 'Queued', ELT(1 + seq %% 4, 'Low', 'Normal', 'High', 'Critical'),
			'{CLAIM_QUEUE}', '{{}}', MD5(seq), 0, 0, 60, queued,
			TIMESTAMPDIFF(MICROSECOND, '1970-01-01', queued) / 1000000 + %(offset)s - (seq %% 4) * %(aging)s,
			MD5(seq), CONCAT('{BENCH_PREFIX}-token-', seq)
		FROM (SELECT seq, %(now)s - INTERVAL (seq * 2.592) SECOND AS queued FROM seq_{start + 1}_to_{end}) generated""",
		{"organization": organization, "now": frappe.utils.now_datetime(), "offset": offset, "aging": aging},
	)
	frappe.db.commit()


def _query_ms(sql: str, values: dict, calls: int) -> list[float]:
	timings = []
	for _ in range(calls):
		started = time.perf_counter()
		frappe.db.sql(sql, values)
		timings.append((time.perf_counter() - started) * 1000)
	return timings


def section_claim(
	organization: str, sizes=(1_000, 10_000, 100_000, 1_000_000), calls: int = 200, **_
) -> None:
	"""The claim with growing backlogs of one queue; prints a markdown table (ms)."""
	from dartwing.dartwing_core.background_jobs import claiming

	values = {
		"queue": CLAIM_QUEUE,
		"now": frappe.utils.now_datetime(),
		"aging": max(settings.get_settings().aging_seconds, 1),
	}
	keyed = f"""SELECT name FROM `tabBackground Job` WHERE status = 'Queued' AND queue = %(queue)s
		ORDER BY claim_order ASC, queued_at ASC LIMIT {claiming.CLAIM_CANDIDATES}"""
	computed = f"""SELECT name FROM `tabBackground Job` WHERE status = 'Queued' AND queue = %(queue)s
		ORDER BY {priority.PRIORITY_SQL} + TIMESTAMPDIFF(SECOND, queued_at, %(now)s) / %(aging)s DESC, queued_at ASC
		LIMIT {claiming.CLAIM_CANDIDATES}"""
	print(f"\n### 7. Claim of the next job by backlog (one queue; ms; {calls} calls each)\n")
	print(
		"| queued jobs | candidates p50 | candidates p95 | whole claim p50 | whole claim p95 | before claim_order: candidates p50 |"
	)
	print("|---|---|---|---|---|---|")
	generated = 0
	for size in sizes:
		generate_queued(organization, generated, size)
		generated = size
		frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
		candidates = _query_ms(keyed, values, calls)
		old = _query_ms(computed, values, max(calls // 20, 5) if size >= 100_000 else calls)
		whole = []
		for _ in range(calls):
			started = time.perf_counter()
			claimed = claiming.claim(CLAIM_QUEUE, None, None)
			whole.append((time.perf_counter() - started) * 1000)
			assert claimed, "nothing claimed"
			frappe.db.rollback()
		print(
			f"| {size:,} | {statistics.median(candidates):.2f} | {_percentile(candidates, 95):.2f} | "
			f"{statistics.median(whole):.2f} | {_percentile(whole, 95):.2f} | {statistics.median(old):.2f} |",
			flush=True,
		)
	_delete_org_jobs(organization)


def _delete_org_jobs(organization: str, batch: int = 50_000) -> None:
	"""Everything of the benchmark's organization, in batches (a million rows take a while); the
	metrics rollups' hours of those jobs are marked for the next refresh."""
	metrics_rollup.mark_jobs_dirty("organization = %(organization)s", {"organization": organization})
	frappe.db.commit()
	for table in ("Job Execution Log", "Background Job"):
		while True:
			frappe.db.sql(f"DELETE FROM `tab{table}` WHERE organization = %s LIMIT {batch}", organization)
			deleted = frappe.db._cursor.rowcount
			frappe.db.commit()
			if deleted < batch:
				break
	frappe.db.sql(
		"""DELETE dependency FROM `tabBackground Job Dependency` dependency
		LEFT JOIN `tabBackground Job` job ON job.name = dependency.parent WHERE job.name IS NULL"""
	)
	frappe.db.commit()


def _fake_tokens(start: int, end: int, remove: bool = False) -> None:
	"""RQ's records of the benchmark's queued jobs' tokens, waiting in their queue (or gone)."""
	from frappe.utils.background_jobs import generate_qname, get_redis_conn

	connection, origin = get_redis_conn(), generate_qname(CLAIM_QUEUE)
	for first in range(start + 1, end + 1, 10_000):
		ids = [f"{BENCH_PREFIX}-token-{n}" for n in range(first, min(first + 10_000, end + 1))]
		pipe = connection.pipeline(transaction=False)
		for token in ids:
			if remove:
				pipe.delete(f"rq:job:{token}")
			else:
				pipe.hset(f"rq:job:{token}", mapping={"status": "queued", "origin": origin})
		if remove:
			pipe.delete(f"rq:queue:{origin}")
		else:
			pipe.rpush(f"rq:queue:{origin}", *ids)
		pipe.execute()


def section_reaper(organization: str, sizes=(1_000, 10_000, 100_000), **_) -> None:
	"""The reaper's lost-token check over the Queued jobs, all tokens alive in Redis: one pass as
	every minute (at most ``reaper.PASS_BUDGET`` jobs, going on where the last stopped), and one
	pass over everything, as after Redis lost its data."""
	from frappe.utils.background_jobs import get_redis_conn

	from dartwing.dartwing_core.background_jobs import reaper

	marker = reaper._token_store_key(reaper.TOKENS_MARKER)
	print("\n### 8. A reaper pass over the Queued jobs (all tokens held by RQ)\n")
	print("| queued jobs | one pass (s) | jobs pushed again | a pass after Redis lost its data (s) |")
	print("|---|---|---|---|")
	generated = 0
	try:
		for size in sizes:
			generate_queued(organization, generated, size)
			_fake_tokens(generated, size)
			generated = size
			get_redis_conn().set(marker, 1)
			started = time.perf_counter()
			repushed = reaper.repush_lost_queued()
			bounded = time.perf_counter() - started
			get_redis_conn().delete(marker)
			started = time.perf_counter()
			repushed += reaper.repush_lost_queued()
			everything = time.perf_counter() - started
			print(f"| {size:,} | {bounded:.2f} | {repushed} | {everything:.2f} |", flush=True)
	finally:
		_fake_tokens(0, generated, remove=True)
		_delete_org_jobs(organization)


def _queue_engine_backlog(organization: str, size: int) -> None:
	"""``size`` Queued demo_echo jobs on the short queue, each with its own waiting token in RQ, as
	``size`` submits would leave them (rows in one statement, tokens in pipelines)."""
	from dartwing.dartwing_core.background_jobs import dispatch

	aging = max(settings.get_settings().aging_seconds, 1)
	offset = round((clock.utc_now() - clock.site_now()).total_seconds())
	site = frappe.local.site
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, claim_order, correlation_id, rq_job_id)
		SELECT CONCAT('{BENCH_PREFIX}-B-', seq), queued, queued, 'Administrator', 'Administrator', 0,
			'demo_echo', %(organization)s, 'Queued', 'Normal', 'short', '{{}}', MD5(seq), 0, 0, 60, queued,
			TIMESTAMPDIFF(MICROSECOND, '1970-01-01', queued) / 1000000 + %(offset)s - %(aging)s,
			MD5(seq), CONCAT(%(site)s, '::{BENCH_PREFIX}-B-token-', seq)
		FROM (SELECT seq, %(now)s - INTERVAL {size} SECOND + INTERVAL seq SECOND AS queued
			FROM seq_1_to_{size}) generated""",
		{
			"organization": organization,
			"now": frappe.utils.now_datetime(),
			"offset": offset,
			"aging": aging,
			"site": site,
		},
	)
	frappe.db.commit()
	for first in range(1, size + 1, 10_000):
		dispatch.push_many(
			[
				(f"{BENCH_PREFIX}-B-{n}", "short", f"{BENCH_PREFIX}-B-token-{n}")
				for n in range(first, min(first + 10_000, size + 1))
			]
		)
		frappe.db.commit()


def _horse_rss(worker: subprocess.Popen) -> int:
	"""Resident memory (bytes) of the worker's work horses right now (0 between jobs)."""
	import psutil

	try:
		return sum(child.memory_info().rss for child in psutil.Process(worker.pid).children(recursive=True))
	except psutil.Error:
		return 0


def engine_drain_rate(organization: str, backlog: int, measured: int, workers: int) -> tuple[float, list]:
	"""Jobs per second over the first ``measured`` jobs finished from a backlog of ``backlog`` queued
	jobs, from the first start to the ``measured``-th finish (worker boot left out), and the horse
	memory samples ``(jobs finished, rss bytes)`` taken meanwhile."""
	_drain()
	_queue_engine_backlog(organization, backlog)
	processes = [_process("worker", "--queue", "short") for _ in range(workers)]
	samples = []
	try:

		def finished() -> int:
			return frappe.db.count(
				"Background Job", {"organization": organization, "status": states.COMPLETED}
			)

		deadline = time.monotonic() + 1800
		while time.monotonic() < deadline:
			frappe.db.rollback()
			done = finished()
			rss = _horse_rss(processes[0])
			if rss:
				samples.append((done, rss))
			if done >= measured:
				break
			time.sleep(0.25)
	finally:
		for process in processes:
			os.killpg(process.pid, signal.SIGKILL)
			process.wait(timeout=60)
	first_start, nth_finish = frappe.db.sql(
		f"""SELECT (SELECT MIN(started_at) FROM `tabBackground Job` WHERE organization = %(org)s),
			(SELECT finished_at FROM `tabBackground Job` WHERE organization = %(org)s AND status = 'Completed'
			ORDER BY finished_at LIMIT 1 OFFSET {measured - 1})""",
		{"org": organization},
	)[0]
	_drain()
	_delete_org_jobs(organization)
	return measured / (nth_finish - first_start).total_seconds(), samples


def raw_drain_rate(backlog: int, measured: int, workers: int) -> float:
	"""The same for raw ``frappe.enqueue("frappe.ping")``: jobs per second while the first
	``measured`` of ``backlog`` RQ jobs leave the queue, from the first one taken."""
	from rq import Queue

	_drain()
	queue = get_queue("short")
	for first in range(0, backlog, 10_000):
		queue.enqueue_many(
			[
				Queue.prepare_data(
					"frappe.utils.background_jobs.execute_job",
					kwargs={"site": frappe.local.site, "user": "Administrator", "method": "frappe.ping",
						"event": None, "job_name": "frappe.ping", "is_async": True, "kwargs": {}},
					timeout=300,
				)
				for _ in range(min(10_000, backlog - first))
			]
		)  # fmt: skip
	processes = [_process("worker", "--queue", "short") for _ in range(workers)]
	try:
		started = None
		deadline = time.monotonic() + 1800
		while time.monotonic() < deadline:
			left = queue.count
			if started is None and left < backlog:
				started = time.perf_counter()
			if left <= backlog - measured:
				break
			time.sleep(0.05)
		took = time.perf_counter() - (started or time.perf_counter())
	finally:
		for process in processes:
			os.killpg(process.pid, signal.SIGKILL)
			process.wait(timeout=60)
	_drain()
	return measured / took if took else float("nan")


def section_backlog(
	organization: str, backlogs=(200, 100_000), measured: int = 200, repeat: int = 3, **_
) -> None:
	"""Throughput with a small and a large backlog, engine beside raw RQ (median of ``repeat``)."""
	print(
		f"\n### 10. Throughput by backlog: the first {measured} jobs (jobs/s, median of {repeat};"
		" worker boot left out)\n"
	)
	print("| workers | backlog | raw frappe.enqueue | engine | engine / raw |")
	print("|---|---|---|---|---|")
	for workers in (1, 2):
		for backlog in backlogs:
			count = min(measured, backlog)
			raw = [raw_drain_rate(backlog, count, workers) for _ in range(repeat)]
			engine = [engine_drain_rate(organization, backlog, count, workers)[0] for _ in range(repeat)]
			ratio = statistics.median(engine) / statistics.median(raw)
			print(
				f"| {workers} | {backlog:,} | {_spread(raw)} | {_spread(engine)} | {ratio:.2f}x |", flush=True
			)


def section_horse_memory(organization: str, jobs: int = 10_000, **_) -> None:
	"""One worker drains ``jobs`` jobs from a backlog of as many; its work horses' memory meanwhile."""
	rate, samples = engine_drain_rate(organization, jobs, jobs, 1)
	print(f"\n### 11. Work horse memory while one worker drains {jobs:,} jobs ({rate:.0f} jobs/s)\n")
	print("| jobs finished | horse RSS MiB (max in this stretch) |")
	print("|---|---|")
	stretch = max(jobs // 10, 1)
	for start in range(0, jobs, stretch):
		inside = [rss for done, rss in samples if start <= done < start + stretch]
		if inside:
			print(f"| {start:,}–{start + stretch:,} | {max(inside) / 2**20:.1f} |")


def section_throughput(organization: str, repeat: int = 3, jobs: int = 200, **_) -> None:
	print("### 1. Trivial-job throughput (jobs/s; median (min–max))\n")
	print("| workers | raw frappe.enqueue | engine | engine / raw |")
	print("|---|---|---|---|")
	for workers in (1, 2):
		runs = [throughput(organization, jobs, workers) for _ in range(repeat)]
		raw, engine = [r[0] for r in runs], [r[1] for r in runs]
		ratio = statistics.median(engine) / statistics.median(raw)
		print(f"| {workers} | {_spread(raw)} | {_spread(engine)} | {ratio:.2f}x |", flush=True)


def section_submit(organization: str, repeat: int = 3, submits: int = 200, **_) -> None:
	print(f"\n### 2. Submit cost ({submits} calls x {repeat}, ms)\n")
	print("| measure | p50 | p95 |")
	print("|---|---|---|")
	baseline, engine = [], []
	for _ in range(repeat):
		b, e = submit_cost(organization, submits)
		baseline += b
		engine += e
	for label, values in (
		("ToDo insert + frappe.enqueue + commit", baseline),
		("submit + commit", engine),
	):
		ms = [v * 1000 for v in values]
		print(f"| {label} | {statistics.median(ms):.2f} | {_percentile(ms, 95):.2f} |")
	print(
		f"\nsubmit / baseline (p50): {statistics.median(engine) / statistics.median(baseline):.2f}x",
		flush=True,
	)
	to_start, run_times = submit_to_start(organization)
	print("\n| one idle worker, a demo_echo job every 0.5 s | n | p50 ms | p95 ms |")
	print("|---|---|---|---|")
	for label, values in (("submit to start", to_start), ("recorded run time", run_times)):
		ms = [v * 1000 for v in values]
		print(
			f"| {label} | {len(ms)} | {statistics.median(ms):.1f} | {_percentile(ms, 95):.1f} |",
			flush=True,
		)


def section_dedup(organization: str, repeat: int = 3, **_) -> None:
	deduped = frappe.get_doc(
		{"doctype": "Job Type", "job_type_name": f"bench_dedup_{frappe.generate_hash(length=4)}",
		 "title": "bench dedup", "handler": "demo_echo", "queue": "short", "dedup_window_seconds": 600},
	).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()
	try:
		print("\n### 3. 200 concurrent identical submits\n")
		print("| run | jobs created | wall s |")
		print("|---|---|---|")
		for n in range(repeat):
			created, wall = concurrent_identical(organization, deduped.name)
			print(f"| {n + 1} | {created} | {wall:.2f} |", flush=True)
	finally:
		_delete_org_jobs(organization)
		frappe.delete_doc("Job Type", deduped.name, ignore_permissions=True, force=True)
		frappe.db.commit()


def section_growth(organization: str, sizes=(1_000, 10_000, 100_000, 1_000_000), **_) -> None:
	from dartwing.dartwing_core.report.job_type_health import job_type_health

	print("\n### 4. Growth: metrics, report, workspace and submit latency by table size (ms)\n")
	print(
		"| jobs in table | rollup backfill (s) | refresh after 20 submits | metrics p50 (24 h) | metrics p95 (24 h) "
		"| metrics p95 (7 days) | metrics p50 (30 days) | metrics p95 (30 days) | raw scan p50 (30 days, before rollups) "
		"| Job Type Health p95 (30 days) | workspace card + charts p95 | submit p50 |"
	)
	print("|---|---|---|---|---|---|---|---|---|---|---|---|")
	generated = 0
	for size in sizes:
		generate_jobs(organization, generated, size)
		generated = size
		frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
		# The generated rows are written in the past (modified = creation): a backfill stores them.
		backfill = metrics_rollup.rebuild()
		for table in (
			metrics_rollup.COUNT_TABLE,
			metrics_rollup.HISTOGRAM_TABLE,
			metrics_rollup.PERIOD_TABLE,
		):
			frappe.db.sql(f"ANALYZE TABLE `tab{table}`")
		now = frappe.utils.now_datetime()
		day = _timed(lambda: metrics.job_metrics(since=str(now - timedelta(hours=24))), 20)
		week = _timed(lambda: metrics.job_metrics(since=str(now - timedelta(days=7))), 20)
		month = _timed(lambda: metrics.job_metrics(since=str(now - timedelta(days=30))), 20)
		raw = _timed(lambda: raw_metrics_scan(now - timedelta(days=30)), 3)
		report_filters = {"from_date": str((now - timedelta(days=30)).date()), "to_date": str(now.date())}
		report = _timed(lambda: job_type_health.execute(report_filters), 20)
		workspace = _timed(workspace_figures, 20)
		cost = []
		for i in range(20):
			started = time.perf_counter()
			submit("demo_echo", {"growth": size, "i": i}, organization=organization)
			frappe.db.commit()
			cost.append((time.perf_counter() - started) * 1000)
		refresh = _timed(lambda: metrics_rollup.refresh(time_budget_seconds=60), 1)
		print(
			f"| {size:,} | {backfill['seconds']:.1f} | {refresh[0]:.0f} | {statistics.median(day):.1f} "
			f"| {_percentile(day, 95):.1f} | {_percentile(week, 95):.1f} | {statistics.median(month):.1f} "
			f"| {_percentile(month, 95):.1f} | {statistics.median(raw):.0f} | {_percentile(report, 95):.1f} "
			f"| {_percentile(workspace, 95):.1f} | {statistics.median(cost):.2f} |",
			flush=True,
		)
	_drain()
	_delete_org_jobs(organization)
	metrics_rollup.refresh(time_budget_seconds=600)


def section_retry(
	organization: str, due_sizes=(1_000, 10_000, 100_000), history=(100_000, 1_000_000), **_
) -> None:
	"""One retry tick by how many jobs are due, then 10,000 due beside a growing history."""
	print("\n### 5. One retry-queue tick (jobs of three queues, all due)\n")
	print("| due jobs | other jobs in the table | seconds | µs per job |")
	print("|---|---|---|---|")
	_delete_org_jobs(organization)
	rows = [(due, 0) for due in due_sizes] + [(10_000, size) for size in history]
	generated = 0
	for due, other in rows:
		if other > generated:
			generate_jobs(organization, generated, other)
			generated = other
		took = retry_tick(organization, due)
		print(f"| {due:,} | {other:,} | {took:.2f} | {took / due * 1e6:.0f} |", flush=True)
	_delete_org_jobs(organization)


def section_lateness(organization: str, **_) -> None:
	print_lateness(organization)


def upkeep_pass_cost(organization: str, backlog: int = 100_000, passes: int = 20) -> list[float]:
	"""Milliseconds per upkeep pass (in this process, between full sweeps) over a large backlog."""
	for status, column, value in (
		("Pending", "run_at_utc", "UTC_TIMESTAMP(6) + INTERVAL 1 DAY"),
		("Retrying", "next_retry_utc", "UTC_TIMESTAMP(6) + INTERVAL 1 DAY"),
		("Queued", "queued_at", "%(site_now)s"),
	):
		frappe.db.sql(
			f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
				job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
				max_retries, timeout_seconds, correlation_id, `{column}`)
			SELECT CONCAT('{BENCH_PREFIX}-UPKEEP-{status}-', seq), NOW(6), NOW(6), 'Administrator',
				'Administrator', 0, 'demo_echo', %(organization)s, %(status)s, 'Normal', 'short', '{{}}',
				MD5(seq), 1, 3, 60, MD5(seq), {value}
			FROM seq_1_to_{backlog}""",
			{"organization": organization, "status": status, "site_now": clock.site_now()},
		)
		frappe.db.commit()
	frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
	state, runner = upkeep.SiteState(), upkeep.runner_id()
	upkeep.upkeep_pass(state, runner)  # taking the lease makes the first pass a full sweep
	timings = []
	for _ in range(passes):
		time.sleep(upkeep.PASS_SECONDS)
		started = time.perf_counter()
		upkeep.upkeep_pass(state, runner)
		timings.append((time.perf_counter() - started) * 1000)
	from frappe.utils.background_jobs import get_redis_conn

	get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
	_delete_org_jobs(organization)
	return timings


def section_upkeep(organization: str, **_) -> None:
	timings = upkeep_pass_cost(organization)
	print("\n### 9. One upkeep pass between full sweeps, 100,000 jobs each Pending (run_at tomorrow),")
	print("Retrying (due tomorrow) and Queued (ms)\n")
	print("| passes | p50 | max |")
	print("|---|---|---|")
	print(f"| {len(timings)} | {statistics.median(timings):.1f} | {max(timings):.1f} |", flush=True)


SECTIONS = {
	"throughput": section_throughput,
	"submit": section_submit,
	"dedup": section_dedup,
	"growth": section_growth,
	"retry": section_retry,
	"lateness": section_lateness,
	"claim": section_claim,
	"reaper": section_reaper,
	"upkeep": section_upkeep,
	"backlog": section_backlog,
	"horse_memory": section_horse_memory,
}


def run(sections: str | None = None, **options) -> None:
	"""Every section in order, or only ``sections`` (comma separated names of ``SECTIONS``)."""
	names = [name.strip() for name in (sections or ",".join(SECTIONS)).split(",") if name.strip()]
	unknown = [name for name in names if name not in SECTIONS]
	if unknown:
		raise ValueError(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
	organization = f"bench-{frappe.generate_hash(length=6)}"
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": organization, "members": [{"user": "Administrator"}]}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	_drain()
	cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
	print(f"\nDartwing benchmarks on {frappe.local.site}: {cpu} CPUs, sections {', '.join(names)}\n")
	try:
		for name in names:
			SECTIONS[name](organization, **options)
	finally:
		frappe.db.rollback()
		_drain()
		_delete_org_jobs(organization)
		frappe.delete_doc("Organization", organization, ignore_permissions=True, force=True)
		frappe.db.commit()


def run_lateness() -> None:
	run("lateness,upkeep")


def run_claim(**options) -> None:
	run("claim", **options)
