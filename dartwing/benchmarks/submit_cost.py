"""Section ``submit``: ``submit`` cost vs a document insert + ``frappe.enqueue`` (p50/p95), the
same for ``dartwing.enqueue`` of a function (its keyword arguments bound to the signature) beside
``frappe.enqueue`` of it, the bind alone, and submit-to-start with one idle worker."""

import os
import signal
import statistics
import subprocess
import time

import frappe

import dartwing
from dartwing.benchmarks.common import WORKER_ENV, delete_org_jobs, drain_queues, percentile
from dartwing.dartwing_core.background_jobs import method_jobs, states
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.processes import frappe_cli

FUNCTION = "dartwing.benchmarks.submit_cost.record_order"


def record_order(order_id, full=False):
	"""What the ``dartwing.enqueue`` measure enqueues (it never runs: the queues are drained)."""
	return {"order": order_id, "full": full}


def submit_cost(organization: str, calls: int) -> dict[str, list[float]]:
	"""Seconds per call of each measure, interleaved call by call."""
	measured = {"baseline": [], "submit": [], "frappe.enqueue": [], "dartwing.enqueue": []}

	def timed(measure, call):
		started = time.perf_counter()
		call()
		frappe.db.commit()
		measured[measure].append(time.perf_counter() - started)

	dartwing.enqueue(FUNCTION, queue="short", organization=organization, order_id="warm-up")  # its Job Type
	frappe.db.commit()
	for i in range(calls):
		timed(
			"baseline",
			lambda: (
				frappe.get_doc({"doctype": "ToDo", "description": "dartwing benchmark baseline"}).insert(
					ignore_permissions=True
				),
				frappe.enqueue("frappe.ping", queue="short", enqueue_after_commit=True),
			),
		)
		timed("submit", lambda: submit("demo_echo", {"cost": i}, organization=organization))
		timed(
			"frappe.enqueue",
			lambda: frappe.enqueue(FUNCTION, queue="short", enqueue_after_commit=True, order_id=f"SO-{i}"),
		)
		timed(
			"dartwing.enqueue",
			lambda: dartwing.enqueue(FUNCTION, queue="short", organization=organization, order_id=f"SO-{i}"),
		)
	frappe.db.delete("ToDo", {"description": "dartwing benchmark baseline"})
	frappe.db.commit()
	drain_queues()
	delete_org_jobs(organization)
	return measured


def bind_cost(calls: int = 20_000) -> float:
	"""Microseconds per ``method_jobs.check_call`` (the bind ``dartwing.enqueue`` and ``submit``
	each add for a function's job), signature cached."""
	parameters = {"order_id": "SO-1", "full": True}
	method_jobs.check_call(FUNCTION, parameters)
	started = time.perf_counter()
	for _ in range(calls):
		method_jobs.check_call(FUNCTION, parameters)
	return (time.perf_counter() - started) / calls * 1e6


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
	measured = {}
	for _ in range(repeat):
		for measure, values in submit_cost(organization, submits).items():
			measured.setdefault(measure, []).extend(values)
	for label, measure in (
		("ToDo insert + frappe.enqueue + commit", "baseline"),
		("submit + commit", "submit"),
		("frappe.enqueue(function) + commit", "frappe.enqueue"),
		("dartwing.enqueue(function) + commit", "dartwing.enqueue"),
	):
		ms = [v * 1000 for v in measured[measure]]
		print(f"| {label} | {statistics.median(ms):.2f} | {percentile(ms, 95):.2f} |")
	median = {measure: statistics.median(values) for measure, values in measured.items()}
	print(f"\nsubmit / baseline (p50): {median['submit'] / median['baseline']:.2f}x", flush=True)
	print(
		f"dartwing.enqueue / baseline (p50): {median['dartwing.enqueue'] / median['baseline']:.2f}x; "
		f"binding the arguments to the signature: {bind_cost():.1f} µs a call",
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
