"""Section ``lateness``: how long after its due time a job starts, for retries after 1 s, 5 s and
30 s, ``run_at`` and a cron schedule, with the upkeep runner and one worker (as ``bench start`` has
them), idle and while another worker is busy on another queue."""

import os
import random
import signal
import statistics
import time
from datetime import timedelta

import frappe

from dartwing.benchmarks.common import delete_org_jobs, drain_queues, percentile, start_process, wait_until
from dartwing.dartwing_core.background_jobs import clock, states, upkeep
from dartwing.dartwing_core.background_jobs.submit import submit

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
		drain_queues()
		from frappe.utils.background_jobs import get_redis_conn

		get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
		processes.append(start_process("dartwing", "upkeep", "--only", site))
		processes.append(start_process("worker", "--queue", "short,default"))
		if busy:
			for i in range(60 * (minutes + 2)):
				submit(busy_type, {"seconds": 1, "steps": 1, "i": i}, organization=organization)
			frappe.db.commit()
			processes.append(start_process("worker", "--queue", "long"))
		wait_until(lambda: (upkeep.last_pass() or {}).get("at", 0) > time.time() - 1, 60)
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
		wait_until(
			lambda: (
				frappe.db.count("Background Job", {"name": ("in", measured), "status": states.COMPLETED})
				== len(measured)
			),
			240,
		)
		first_fire = frappe.db.get_value("Job Schedule", made_schedules[0], "next_run_utc")
		wait_until(
			lambda: clock.utc_now() > first_fire + timedelta(minutes=minutes - 1, seconds=20),
			60 * minutes + 60,
		)
		wait_until(
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
	drain_queues()
	delete_org_jobs(organization)
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
				f"{percentile(values, 95):.2f} | {max(values):.2f} |",
				flush=True,
			)


def section_lateness(organization: str, **_) -> None:
	print_lateness(organization)
