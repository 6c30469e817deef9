"""Section ``backlog``: throughput over the first 200 jobs from a 200-job and a 100,000-job backlog,
raw ``frappe.enqueue`` beside the engine, 1 and 2 workers (worker boot left out; median of
``repeat``)."""

import os
import signal
import statistics
import subprocess
import time

import frappe
from frappe.utils.background_jobs import get_queue

from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs, drain_queues, spread, start_process
from dartwing.dartwing_core.background_jobs import clock, settings, states


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
	drain_queues()
	_queue_engine_backlog(organization, backlog)
	processes = [start_process("worker", "--queue", "short") for _ in range(workers)]
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
	drain_queues()
	delete_org_jobs(organization)
	return measured / (nth_finish - first_start).total_seconds(), samples


def raw_drain_rate(backlog: int, measured: int, workers: int) -> float:
	"""The same for raw ``frappe.enqueue("frappe.ping")``: jobs per second while the first
	``measured`` of ``backlog`` RQ jobs leave the queue, from the first one taken."""
	from rq import Queue

	drain_queues()
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
	processes = [start_process("worker", "--queue", "short") for _ in range(workers)]
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
	drain_queues()
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
				f"| {workers} | {backlog:,} | {spread(raw)} | {spread(engine)} | {ratio:.2f}x |", flush=True
			)
