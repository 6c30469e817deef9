"""Section ``throughput``: trivial-job throughput, raw ``frappe.enqueue("frappe.ping")`` vs the engine
(``demo_echo``), with 1 and 2 burst workers."""

import statistics
import time

import frappe

from dartwing.benchmarks.common import burst_workers, delete_org_jobs, drain_queues, spread
from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.submit import submit


def throughput(organization: str, jobs: int, workers: int) -> tuple[float, float]:
	"""Jobs per second through raw frappe.enqueue, then through the engine, same workers."""
	drain_queues()
	for _ in range(jobs):
		frappe.enqueue("frappe.ping", queue="short")
	raw = jobs / burst_workers(workers)

	for i in range(jobs):
		submit("demo_echo", {"throughput": i, "at": time.time()}, organization=organization)
		if i % 50 == 49:
			frappe.db.commit()
	frappe.db.commit()
	engine = jobs / burst_workers(workers)
	frappe.db.rollback()
	done = frappe.db.count("Background Job", {"organization": organization, "status": states.COMPLETED})
	left = frappe.db.count(
		"Background Job", {"organization": organization, "status": ("!=", states.COMPLETED)}
	)
	if left:
		print(f"  warning: {left} engine jobs did not complete ({done} did)")
	delete_org_jobs(organization)
	return raw, engine


def section_throughput(organization: str, repeat: int = 3, jobs: int = 200, **_) -> None:
	print("### 1. Trivial-job throughput (jobs/s; median (min–max))\n")
	print("| workers | raw frappe.enqueue | engine | engine / raw |")
	print("|---|---|---|---|")
	for workers in (1, 2):
		runs = [throughput(organization, jobs, workers) for _ in range(repeat)]
		raw, engine = [r[0] for r in runs], [r[1] for r in runs]
		ratio = statistics.median(engine) / statistics.median(raw)
		print(f"| {workers} | {spread(raw)} | {spread(engine)} | {ratio:.2f}x |", flush=True)
