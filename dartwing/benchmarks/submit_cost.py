"""Section ``submit``: ``submit`` cost vs a document insert + ``frappe.enqueue`` (p50/p95), and
submit-to-start with one idle worker."""

import os
import signal
import statistics
import subprocess
import time

import frappe

from dartwing.benchmarks.common import WORKER_ENV, delete_org_jobs, drain_queues, percentile
from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.processes import frappe_cli


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
	drain_queues()
	delete_org_jobs(organization)
	return baseline, engine


def submit_to_start(
	organization: str, samples: int = 50, gap: float = 0.5
) -> tuple[list[float], list[float]]:
	"""Seconds from submit to start with one idle worker waiting, and the recorded run times."""
	drain_queues()
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
	delete_org_jobs(organization)
	return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


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
		print(f"| {label} | {statistics.median(ms):.2f} | {percentile(ms, 95):.2f} |")
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
			f"| {label} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 95):.1f} |",
			flush=True,
		)
