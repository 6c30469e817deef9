"""Submit latency and submit-to-start latency, with raw ``frappe.enqueue`` as the baseline.

Run on a bench (no worker may be running for the site's queues)::

	bench --site SITE execute dartwing.benchmarks.latency.run --kwargs "{'jobs': 200}"

It prints a table: per-call cost of ``submit`` vs a plain document insert + ``frappe.enqueue``
(each committed), then the time from submit to start and the throughput with one real worker
process draining the jobs. Everything it creates is deleted afterwards.
"""

import statistics
import subprocess
import sys
import time

import frappe
from frappe.utils.background_jobs import get_queue

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.submit import submit


def _percentile(values: list[float], pct: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _row(label: str, values: list[float]) -> str:
	ms = [v * 1000 for v in values]
	return (
		f"| {label} | {len(ms)} | {statistics.median(ms):.2f} | {_percentile(ms, 95):.2f} | {max(ms):.2f} |"
	)


def _baseline_call():
	"""What a Frappe developer writes without Dartwing: a record plus frappe.enqueue."""
	doc = frappe.get_doc({"doctype": "ToDo", "description": "dartwing latency baseline"}).insert(
		ignore_permissions=True
	)
	frappe.enqueue("frappe.ping", queue="short", enqueue_after_commit=True)
	return doc.name


def run(jobs: int = 200) -> None:
	organization = f"latency-{frappe.generate_hash(length=6)}"
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": organization, "members": [{"user": "Administrator"}]}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	get_queue("short").empty()
	baseline, engine, todos, created = [], [], [], []
	try:
		for i in range(jobs):
			started = time.perf_counter()
			todos.append(_baseline_call())
			frappe.db.commit()
			baseline.append(time.perf_counter() - started)

			started = time.perf_counter()
			created.append(submit("demo_echo", {"i": i}, organization=organization)["job_id"])
			frappe.db.commit()
			engine.append(time.perf_counter() - started)
		get_queue("short").empty()
		for name in created:
			frappe.db.set_value("Background Job", name, "status", states.PENDING, update_modified=False)
		frappe.db.commit()

		# Submit-to-start: a worker is already waiting when each job is submitted.
		worker = subprocess.Popen(
			[
				sys.executable,
				"-m",
				"frappe.utils.bench_helper",
				"frappe",
				"--site",
				frappe.local.site,
				"worker",
				"--queue",
				"short",
			],
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
		)
		time.sleep(3)
		measured = []
		try:
			for i in range(min(jobs, 50)):
				measured.append(submit("demo_echo", {"start": i}, organization=organization)["job_id"])
				frappe.db.commit()
				time.sleep(0.05)
			deadline = time.time() + 120
			while time.time() < deadline:
				frappe.db.rollback()
				if frappe.db.count(
					"Background Job", {"name": ("in", measured), "status": states.COMPLETED}
				) == len(measured):
					break
				time.sleep(0.2)
		finally:
			worker.terminate()
			worker.wait(timeout=30)
		rows = frappe.db.sql(
			"SELECT TIMESTAMPDIFF(MICROSECOND, creation, started_at) / 1e6, run_time FROM `tabBackground Job` WHERE name IN %s AND status = 'Completed'",
			(tuple(measured),),
		)
		to_start = [float(r[0]) for r in rows]
		run_times = [float(r[1]) for r in rows]

		print(
			f"\nDartwing latency on {frappe.local.site}: {jobs} submits, {len(measured)} submit-to-start samples\n"
		)
		print("| measure | n | p50 ms | p95 ms | max ms |")
		print("|---|---|---|---|---|")
		print(_row("ToDo insert + frappe.enqueue + commit (baseline)", baseline))
		print(_row("submit_job + commit (demo_echo)", engine))
		print(_row("submit to start, one idle worker", to_start))
		print(_row("handler run time (demo_echo)", run_times))
		print(f"\nsubmit / baseline (p50): {statistics.median(engine) / statistics.median(baseline):.2f}x")
	finally:
		frappe.db.rollback()
		names = frappe.get_all("Background Job", filters={"organization": organization}, pluck="name")
		if names:
			frappe.db.delete("Job Execution Log", {"job": ("in", names)})
			frappe.db.delete("Background Job", {"name": ("in", names)})
		frappe.db.delete("ToDo", {"description": "dartwing latency baseline"})
		frappe.db.delete("Organization Member", {"parent": organization})
		frappe.db.delete("Organization", {"name": organization})
		frappe.db.commit()
		get_queue("short").empty()
