"""Helpers shared by the benchmark sections: worker processes, queues, percentiles, clean-up."""

import os
import statistics
import subprocess
import time

import frappe
from frappe.utils.background_jobs import get_queue

from dartwing.dartwing_core.background_jobs import metrics_rollup
from dartwing.processes import frappe_cli

BENCH_PREFIX = "BENCH"


# Workers run as on a normal bench: Python may cache bytecode (a shell may have turned that off).
WORKER_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


QUEUES = ("short", "default", "long")


def percentile(values: list[float], pct: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
	return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def drain_queues() -> None:
	"""Empty the bench's RQ queues, and with them the record of the sites whose tokens waited there
	(left by another site's run, it would make the suite's horses hand over to a site with nothing
	to run)."""
	from dartwing.dartwing_core.background_jobs.tokens import waiting_sites_key

	for name in QUEUES:
		queue = get_queue(name)
		queue.empty()
		queue.connection.delete(waiting_sites_key(queue.name))


def burst_workers(count: int) -> float:
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


def timed(call, calls: int) -> list[float]:
	"""Milliseconds of each of ``calls`` calls."""
	timings = []
	for _ in range(calls):
		started = time.perf_counter()
		call()
		timings.append((time.perf_counter() - started) * 1000)
	return timings


def start_process(*args: str) -> subprocess.Popen:
	return subprocess.Popen(
		frappe_cli(frappe.local.site, *args),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
		env=WORKER_ENV,
	)


def wait_until(predicate, timeout: float) -> bool:
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.db.rollback()
		if predicate():
			return True
		time.sleep(0.5)
	return False


def delete_org_jobs(organization: str, batch: int = 50_000) -> None:
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
	wait_for_purge()


# Undo records InnoDB may still have to purge when a measurement starts (a few hundred deleted rows).
PURGED_ENOUGH = 1000


def wait_for_purge(timeout: float = 600) -> None:
	"""Wait until InnoDB has purged what deletes left behind (its history list is short again): after
	a million deleted rows its purge threads take the cores for minutes, and whatever is measured
	next (the claim over another million rows) would measure them too."""
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		length = frappe.db.sql("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
		if not length or int(length[0][1]) < PURGED_ENOUGH:
			return
		time.sleep(1)
