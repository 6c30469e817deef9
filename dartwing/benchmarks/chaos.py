"""Chaos suite: many jobs while workers are SIGKILLed, Redis is flushed and MariaDB restarts.

Run on a bench whose own workers and scheduler are stopped (the suite runs its own)::

	DARTWING_DB_RESTART_CMD="systemctl restart mariadb" \\
	bench --site SITE execute dartwing.benchmarks.chaos.run --kwargs "{'jobs': 1000}"

It submits ``jobs`` jobs of mixed types (the demo handlers echo, sleep with checkpoints,
fail-then-succeed and permanent failure, each with five retries), starts ``workers`` real RQ worker processes and, while they work, every
``kill_every`` seconds SIGKILLs a random worker together with its work horse (and starts a new
one), flushes Redis once and restarts MariaDB once (with ``DARTWING_DB_RESTART_CMD``; without it
that step is skipped and said so). The scheduler's jobs (retry queue, reaper, pending dispatch)
run every two seconds, as a fast scheduler would. When every job has ended, or after
``timeout`` seconds, it prints the figures and checks: every job terminal, none lost, none
completed twice. Exits non-zero if a check fails. Everything it made is deleted afterwards.
"""

import os
import random
import signal
import subprocess
import sys
import time

import frappe
from frappe.utils.background_jobs import get_redis_conn

from dartwing.dartwing_core.background_jobs import dispatch, reaper, retry_queue, states
from dartwing.dartwing_core.background_jobs.retention import delete_jobs
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.processes import frappe_cli

# Job types of the suite: the demo handlers with retries left for the jobs whose worker is killed.
JOB_TYPES = {
	"chaos_echo": {"handler": "demo_echo", "queue": "short"},
	"chaos_sleep": {"handler": "demo_sleep", "queue": "default"},
	"chaos_fail": {"handler": "demo_fail", "queue": "long"},
}
# (job type, parameters, how the job must end)
MIX = (
	("chaos_echo", {}, "Completed"),
	("chaos_sleep", {"seconds": 1.5, "steps": 5, "checkpoint": True}, "Completed"),
	("chaos_fail", {"error": "transient", "fail_times": 1}, "Completed"),
	("chaos_fail", {"error": "permanent"}, "Failed"),
)
FAST_SETTINGS = {"stale_heartbeat_seconds": 8, "heartbeat_interval_seconds": 1}


class WorkerPool:
	def __init__(self, site: str, size: int, log_path: str):
		self.site = site
		self.log = open(log_path, "a")
		self.processes = [self._start() for _ in range(size)]
		self.kills = 0

	def _start(self) -> subprocess.Popen:
		return subprocess.Popen(
			frappe_cli(self.site, "worker"),
			cwd=os.getcwd(),
			stdout=self.log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)

	def kill_one(self) -> None:
		"""SIGKILL a worker and its work horse (RQ forks the horse into its own session)."""
		import psutil

		index = random.randrange(len(self.processes))
		victim = self.processes[index]
		try:
			family = [victim.pid] + [p.pid for p in psutil.Process(victim.pid).children(recursive=True)]
		except psutil.NoSuchProcess:
			family = [victim.pid]
		for pid in family:
			try:
				os.kill(pid, signal.SIGKILL)
			except ProcessLookupError:
				pass
		victim.wait(timeout=30)
		self.kills += 1
		self.processes[index] = self._start()

	def stop(self) -> None:
		for process in self.processes:
			try:
				os.killpg(process.pid, signal.SIGTERM)
			except ProcessLookupError:
				pass
		for process in self.processes:
			try:
				process.wait(timeout=30)
			except subprocess.TimeoutExpired:
				os.killpg(process.pid, signal.SIGKILL)
		self.log.close()


def _reconnect() -> None:
	"""After MariaDB restarted, this process needs a new connection too."""
	for _ in range(60):
		try:
			frappe.db.close()
		except Exception:
			pass
		try:
			frappe.connect(site=frappe.local.site)
			frappe.db.sql("SELECT 1")
			return
		except Exception:
			time.sleep(1)
	raise RuntimeError("MariaDB did not come back within a minute")


def _tick() -> None:
	"""What the scheduler does every minute, done every two seconds."""
	retry_queue.requeue_due_retries()
	reaper.reap()
	dispatch.dispatch_pending()
	frappe.db.commit()


def _counts(organization: str) -> dict:
	frappe.db.rollback()
	return dict(
		frappe.db.sql(
			"SELECT status, COUNT(*) FROM `tabBackground Job` WHERE organization = %s GROUP BY status",
			organization,
		)
	)


def _make_job_types() -> None:
	for name, values in JOB_TYPES.items():
		if not frappe.db.exists("Job Type", name):
			frappe.get_doc(
				{
					"doctype": "Job Type",
					"job_type_name": name,
					"title": name,
					"timeout_seconds": 60,
					"max_retries": 5,
					"backoff_strategy": "Schedule",
					"backoff_schedule": "0,1,2",
					**values,
				}
			).insert(ignore_permissions=True)


def _set_settings(values: dict) -> dict:
	settings = frappe.get_doc("Background Job Settings")
	previous = {key: settings.get(key) for key in values}
	settings.update(values)
	settings.flags.ignore_permissions = True
	settings.save()
	frappe.db.commit()
	return previous


def _restart_mariadb(command: str) -> float:
	started = time.monotonic()
	subprocess.run(command, shell=True, check=True, timeout=120)
	_reconnect()
	return time.monotonic() - started


def run(jobs: int = 1000, workers: int = 2, kill_every: float = 10.0, timeout: float = 1500) -> dict:
	site = frappe.local.site
	restart_command = os.environ.get("DARTWING_DB_RESTART_CMD", "").strip()
	organization = f"chaos-{frappe.generate_hash(length=6)}"
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": organization, "members": [{"user": "Administrator"}]}
	).insert(ignore_permissions=True)
	_make_job_types()
	previous_settings = _set_settings(FAST_SETTINGS)

	try:
		report = _run(site, organization, jobs, workers, kill_every, timeout, restart_command)
	finally:
		frappe.db.rollback()
		delete_jobs(frappe.get_all("Background Job", filters={"organization": organization}, pluck="name"))
		frappe.delete_doc("Organization", organization, ignore_permissions=True, force=True)
		for name in JOB_TYPES:
			frappe.delete_doc("Job Type", name, ignore_permissions=True, force=True)
		_set_settings(previous_settings)
		frappe.db.commit()
	if not report["passed"]:
		sys.exit(1)
	return report


def _run(site, organization, jobs, workers, kill_every, timeout, restart_command) -> dict:
	expected = {}
	started = time.monotonic()
	for i in range(jobs):
		job_type, parameters, outcome = MIX[i % len(MIX)]
		job_id = submit(job_type, {**parameters, "chaos": i}, organization=organization)["job_id"]
		expected[job_id] = outcome
		if i % 100 == 99:
			frappe.db.commit()
	frappe.db.commit()
	submit_seconds = time.monotonic() - started
	print(f"submitted {jobs} jobs in {submit_seconds:.1f} s; starting {workers} workers", flush=True)

	pool = WorkerPool(site, workers, os.path.join(os.getcwd(), "..", "logs", "dartwing-chaos-workers.log"))
	events = {"worker_kills": 0, "redis_flushes": 0, "mariadb_restarts": 0}
	flush_at, restart_at = jobs * 0.25, jobs * 0.5  # by the number of ended jobs
	drain_started = time.monotonic()
	next_kill = time.monotonic() + kill_every
	try:
		while time.monotonic() - drain_started < timeout:
			try:
				_tick()
				counts = _counts(organization)
			except Exception as exc:
				print(f"scheduler tick failed ({type(exc).__name__}); reconnecting", flush=True)
				_reconnect()
				continue
			ended = sum(counts.get(status, 0) for status in states.TERMINAL)
			if ended >= jobs:
				break
			if time.monotonic() >= next_kill:
				pool.kill_one()
				next_kill = time.monotonic() + kill_every
			if not events["redis_flushes"] and ended >= flush_at:
				get_redis_conn().flushall()
				events["redis_flushes"] += 1
				print(f"flushed Redis with {ended} jobs ended", flush=True)
			if not events["mariadb_restarts"] and ended >= restart_at:
				if restart_command:
					took = _restart_mariadb(restart_command)
					events["mariadb_restarts"] += 1
					print(f"restarted MariaDB with {ended} jobs ended ({took:.1f} s)", flush=True)
				else:
					print(
						"DARTWING_DB_RESTART_CMD is not set: MariaDB is NOT restarted in this run", flush=True
					)
					events["mariadb_restarts"] = -1
			print(f"  {time.monotonic() - drain_started:6.1f} s  ended {ended}/{jobs}  {counts}", flush=True)
			time.sleep(2)
	finally:
		events["worker_kills"] = pool.kills
		pool.stop()

	drain_seconds = time.monotonic() - drain_started
	report = _verify(organization, expected)
	report.update(events, jobs=jobs, workers=workers, submit_seconds=round(submit_seconds, 1))
	report["drain_seconds"] = round(drain_seconds, 1)
	_print_report(report)

	return report


def _verify(organization: str, expected: dict) -> dict:
	frappe.db.rollback()
	rows = dict(
		frappe.db.sql("SELECT name, status FROM `tabBackground Job` WHERE organization = %s", organization)
	)
	completions = dict(
		frappe.db.sql(
			"""SELECT job, COUNT(*) FROM `tabJob Execution Log`
			WHERE organization = %s AND event = 'Completed' GROUP BY job""",
			organization,
		)
	)
	recovered = frappe.db.sql(
		"""SELECT event, COUNT(*) FROM `tabJob Execution Log`
		WHERE organization = %s AND event IN ('Recovered', 'Requeued') GROUP BY event""",
		organization,
	)
	lost = [job for job in expected if job not in rows]
	not_terminal = [job for job, status in rows.items() if status not in states.TERMINAL]
	completed_twice = [job for job, count in completions.items() if count > 1]
	wrong_outcome = [job for job, outcome in expected.items() if rows.get(job) not in (outcome, None)]
	statuses = {}
	for status in rows.values():
		statuses[status] = statuses.get(status, 0) + 1
	return {
		"statuses": statuses,
		"lost": len(lost),
		"not_terminal": len(not_terminal),
		"completed_twice": len(completed_twice),
		"unexpected_outcome": len(wrong_outcome),
		"recovery_events": dict(recovered),
		"passed": not (lost or not_terminal or completed_twice),
		"examples": {"not_terminal": not_terminal[:5], "unexpected_outcome": wrong_outcome[:5]},
	}


def _print_report(report: dict) -> None:
	print()
	print("| figure | value |")
	print("|---|---|")
	for key in (
		"jobs", "workers", "worker_kills", "redis_flushes", "mariadb_restarts", "recovery_events",
		"submit_seconds", "drain_seconds", "statuses", "lost", "not_terminal", "completed_twice",
		"unexpected_outcome",
	):  # fmt: skip
		print(f"| {key} | {report[key]} |")
	print()
	print("CHAOS PASSED" if report["passed"] else f"CHAOS FAILED: {report['examples']}")
