"""Section ``restart``: what a restart costs. A worker (``bench worker``, started as a process manager
starts it) runs one job of 10 s, 60 s or 10 min; 3 s into it the worker gets SIGTERM, as supervisor,
Docker and Kubernetes send it. Measured from the signal: when the worker exits, and, with a new
worker started as soon as the old one is gone (what the process manager does next), when the job
runs again. A raw ``frappe.enqueue`` job of the same length on a worker of its own is the baseline:
RQ's worker waits for its job, so its wait is capped at ``raw_cap`` seconds, then it is SIGKILLed
(as a process manager ends it) and its job is lost. Last, the kill a container runtime sends after
its own grace (Docker's 10 s by default) during an engine job: when the job is back in the queue.
The upkeep runner runs throughout, as in production. One run each (they take minutes)."""

import os
import signal
import time

import frappe

from dartwing.benchmarks.common import delete_org_jobs, drain_queues, start_process, wait_until
from dartwing.dartwing_core.background_jobs import states, upkeep
from dartwing.dartwing_core.background_jobs.settings import get_settings
from dartwing.dartwing_core.background_jobs.submit import submit

JOB_SECONDS = (10, 60, 600)
SIGNAL_AFTER_SECONDS = 3
RAW_CAP_SECONDS = 120
DOCKER_GRACE_SECONDS = 10


def sleep_for(seconds: float) -> None:
	"""The raw baseline's job: ``frappe.enqueue("dartwing.benchmarks.restart.sleep_for", seconds=...)``."""
	time.sleep(seconds)


def _horses(process) -> list:
	import psutil

	try:
		return psutil.Process(process.pid).children(recursive=True)
	except psutil.NoSuchProcess:
		return []


def _kill_all(process) -> None:
	for child in [process, *_horses(process)]:
		try:
			os.kill(child.pid, signal.SIGKILL)
		except ProcessLookupError:
			pass
	process.wait(timeout=30)


def _wait_exit(process, timeout: float) -> float | None:
	"""Seconds until ``process`` exits, or ``None`` if it has not within ``timeout``."""
	started = time.monotonic()
	try:
		process.wait(timeout=timeout)
	except Exception:
		return None
	return time.monotonic() - started


def _started(job: str, attempt: int, timeout: float = 60) -> bool:
	return wait_until(lambda: _job(job).status == states.RUNNING and _job(job).attempt == attempt, timeout)


def _clean_up(organization: str, *processes) -> None:
	"""Nothing of one case is left for the next: its workers, its tokens, its jobs."""
	for process in processes:
		if process is not None:
			_kill_all(process)
	frappe.db.rollback()
	drain_queues()
	delete_org_jobs(organization)


def _job(name: str) -> frappe._dict:
	frappe.db.rollback()
	return frappe.db.get_value("Background Job", name, ["status", "attempt", "recoveries"], as_dict=True)


def _terminate_once_running(worker, job: str) -> float:
	"""SIGTERM to ``worker`` ``SIGNAL_AFTER_SECONDS`` into ``job``'s first run; when it was sent."""
	if not _started(job, 1):
		raise RuntimeError(f"{job} did not start")
	time.sleep(SIGNAL_AFTER_SECONDS)
	os.kill(worker.pid, signal.SIGTERM)
	return time.monotonic()


def engine_restart(organization: str, job_type: str, seconds: int) -> dict:
	"""SIGTERM during an engine job: the worker's exit, the job's hand-back and its next start."""
	drain_queues()
	job = submit(job_type, {"seconds": seconds, "steps": seconds}, organization=organization)["job_id"]
	frappe.db.commit()
	worker, replacement = start_process("worker", "--queue", "short"), None
	try:
		signalled = _terminate_once_running(worker, job)
		exited = _wait_exit(worker, 300)
		outcome = _job(job)
		result = {"exit": exited, "outcome": outcome.status, "again": None}
		if outcome.status == states.QUEUED:
			replacement = start_process("worker", "--queue", "short")
			if _started(job, 2, 120):
				result["again"] = time.monotonic() - signalled
		return result
	finally:
		_clean_up(organization, worker, replacement)


def raw_restart(seconds: int, cap: float) -> dict:
	"""SIGTERM during a raw ``frappe.enqueue`` job: RQ's worker waits for it, up to ``cap``."""
	drain_queues()
	frappe.enqueue(
		"dartwing.benchmarks.restart.sleep_for", queue="short", timeout=seconds + 60, seconds=seconds
	)
	worker = start_process("worker", "--queue", "short")
	try:
		if not wait_until(lambda: bool(_horses(worker)), 60):
			raise RuntimeError("the raw job did not start")
		time.sleep(SIGNAL_AFTER_SECONDS)
		os.kill(worker.pid, signal.SIGTERM)
		return {"exit": _wait_exit(worker, cap)}
	finally:
		_kill_all(worker)
		drain_queues()


def killed_in_grace(organization: str, job_type: str) -> dict:
	"""SIGTERM, then SIGKILL of the worker and its work horse ``DOCKER_GRACE_SECONDS`` later."""
	drain_queues()
	job = submit(job_type, {"seconds": 600, "steps": 600}, organization=organization)["job_id"]
	frappe.db.commit()
	worker, replacement = start_process("worker", "--queue", "short"), None
	try:
		_terminate_once_running(worker, job)
		time.sleep(DOCKER_GRACE_SECONDS)
		killed = time.monotonic()
		_kill_all(worker)
		replacement = start_process("worker", "--queue", "short")
		result = {"back": None, "again": None}
		if wait_until(lambda: _job(job).status != states.RUNNING or _job(job).attempt > 1, 60):
			result["back"] = time.monotonic() - killed
		if _started(job, 2, 120):
			result["again"] = time.monotonic() - killed
		result["recoveries"] = _job(job).recoveries
		return result
	finally:
		_clean_up(organization, worker, replacement)


def _seconds(value: float | None, cap: float | None = None) -> str:
	if value is None:
		return f"> {cap:.0f}" if cap else "–"
	return f"{value:.1f}"


def section_restart(organization: str, raw_cap: float = RAW_CAP_SECONDS, **_) -> None:
	from frappe.utils.background_jobs import get_redis_conn

	grace = get_settings().shutdown_grace_seconds
	job_type = (
		frappe.get_doc(
			{
				"doctype": "Job Type",
				"job_type_name": f"bench_restart_{frappe.generate_hash(length=4)}",
				"title": "bench restart",
				"handler": "demo_sleep",
				"queue": "short",
				"max_retries": 0,
				"timeout_seconds": 3600,
			}
		)
		.insert(ignore_permissions=True)
		.name
	)
	frappe.db.commit()
	get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
	runner = start_process("dartwing", "upkeep", "--only", frappe.local.site)
	try:
		wait_until(lambda: (upkeep.last_pass() or {}).get("at", 0) > time.time() - 1, 60)
		print(
			f"### 13. Restart: SIGTERM {SIGNAL_AFTER_SECONDS} s into a job (seconds after the signal; "
			f"shutdown grace {grace:g} s; one run each)\n"
		)
		print("| job | raw: worker exits | engine: worker exits | engine: job | engine: runs again |")
		print("|---|---|---|---|---|")
		for seconds in JOB_SECONDS:
			raw = raw_restart(seconds, raw_cap)
			engine = engine_restart(organization, job_type, seconds)
			label = f"{seconds} s" if seconds < 60 else f"{seconds // 60} min"
			raw_exit = _seconds(raw["exit"], raw_cap)
			if raw["exit"] is None:
				raw_exit += " (then SIGKILL: job lost)"
			job = (
				"completed" if engine["outcome"] == states.COMPLETED else f"handed back ({engine['outcome']})"
			)
			print(
				f"| {label} | {raw_exit} | {_seconds(engine['exit'])} | {job} | {_seconds(engine['again'])} |",
				flush=True,
			)
		killed = killed_in_grace(organization, job_type)
		print(
			f"\nSIGKILL of the worker and its work horse {DOCKER_GRACE_SECONDS} s after SIGTERM (Docker's "
			f"default grace) during a 10 min job: back in Queued {_seconds(killed['back'])} s after the kill, "
			f"running again on a new worker {_seconds(killed['again'])} s after it, "
			f"recoveries {killed['recoveries']}, no attempt counted.\n",
			flush=True,
		)
	finally:
		runner.send_signal(signal.SIGTERM)
		runner.wait(timeout=30)
		frappe.db.rollback()
		drain_queues()
		delete_org_jobs(organization)
		frappe.delete_doc("Job Type", job_type, ignore_permissions=True, force=True)
		frappe.db.commit()
