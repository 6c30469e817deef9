"""Section ``job_profile``: where the time of one drained trivial job goes.

Queues ``jobs`` ``demo_echo`` jobs (default 2,000) and drains them with the work horse's own loop
(``executor.run_next``, the code a token runs) in this process, under cProfile, with every
database statement and Redis round trip counted and timed on the way through (per thread: the
horse's main thread, and the watchdog / guard threads of the job's supervision). It prints, per
job: the wall time, the time inside each step of the claim-run-record cycle, the database
statements (and commits) and Redis round trips, and the threads and connections opened. The fork
of a work horse and RQ's own bookkeeping around the first token are left out: a draining horse
pays them once per ``DRAIN_SECONDS``, not per job.
"""

import cProfile
import pstats
import re
import threading
import time
from collections import defaultdict

import frappe
import pymysql
import redis

from dartwing.benchmarks.common import delete_org_jobs, drain_queues
from dartwing.dartwing_core.background_jobs.submit import submit


def _steps() -> list[tuple[str, object]]:
	"""The steps of one job: (label, the function whose cumulative time it is)."""
	from frappe.database.database import Database

	from dartwing.dartwing_core.background_jobs import claiming, demo, dispatch, execution, executor
	from dartwing.dartwing_core.background_jobs.interruption import Supervision
	from dartwing.dartwing_core.background_jobs.side_channel import SideChannel

	return [
		("claim (candidates, row lock, Queued -> Running, log row)", claiming.claim),
		("Execution set up (job type, settings)", execution.Execution.__init__),
		("Execution.run, whole (everything below)", execution.Execution.run),
		("side channel connection opened", SideChannel.__init__),
		("supervision threads started", Supervision.start),
		("handler (demo_echo)", demo.demo_echo),
		("supervision stopped", Supervision.stop),
		("supervision released", Supervision.release),
		("outcome: Running -> Completed, log row", execution.Execution._complete),
		("after_job_finished (waiting jobs released)", dispatch.after_job_finished),
		("commits between jobs (COMMIT AND CHAIN, realtime events after it)", executor._commit_and_begin),
		("other commits (the drain's last, realtime events after it)", Database.commit),
		("executor.run_next, whole", executor.run_next),
	]


class _Meter:
	"""Counts and times calls of one method, per kind of thread, calling straight through; for SQL,
	also per kind of statement (its first words, literals left out)."""

	def __init__(self):
		self.calls: dict[str, int] = defaultdict(int)
		self.seconds: dict[str, float] = defaultdict(float)
		self.commits = 0
		self.statements: dict[str, list] = defaultdict(lambda: [0, 0.0])

	def wrap(self, owner, name: str, commit_text=None):
		original = getattr(owner, name)
		meter = self

		def measured(*args, **kwargs):
			where = "main" if threading.current_thread() is threading.main_thread() else "other threads"
			if commit_text and args[1:] and str(args[1]).strip().lower().startswith(commit_text):
				meter.commits += 1
			started = time.perf_counter()
			try:
				return original(*args, **kwargs)
			finally:
				spent = time.perf_counter() - started
				meter.seconds[where] += spent
				meter.calls[where] += 1
				if commit_text and args[1:]:
					statement = meter.statements[_statement_kind(str(args[1]))]
					statement[0] += 1
					statement[1] += spent

		setattr(owner, name, measured)
		return lambda: setattr(owner, name, original)


def _statement_kind(sql: str) -> str:
	words = re.sub(r"'[^']*'", "?", re.sub(r"\s+", " ", sql).strip())
	return words[:72]


def _queue_jobs(organization: str, jobs: int) -> None:
	for i in range(jobs):
		submit("demo_echo", {"profile": i}, organization=organization)
		if i % 200 == 199:
			frappe.db.commit()
	frappe.db.commit()


def _drain_in_process() -> int:
	from dartwing.dartwing_core.background_jobs import executor

	ran = 0
	while batch := executor.run_next(None, "short"):
		ran += len(batch)
	return ran


def _step_seconds(stats: pstats.Stats) -> list[tuple[str, float]]:
	"""Cumulative seconds of each step's function."""
	seconds = []
	for label, function in _steps():
		code = function.__code__
		key = (code.co_filename, code.co_firstlineno, code.co_name)
		seconds.append((label, stats.stats[key][3] if key in stats.stats else 0.0))
	return seconds


def section_job_profile(organization: str, jobs: int = 2_000, **_) -> None:
	drain_queues()
	_queue_jobs(organization, jobs)
	sql, rq = _Meter(), _Meter()
	restore = [
		sql.wrap(pymysql.connections.Connection, "query", commit_text="commit"),
		rq.wrap(redis.connection.Connection, "send_packed_command"),
	]
	threads_before, connections = threading.active_count(), _Meter()
	restore.append(connections.wrap(pymysql.connections.Connection, "connect"))
	profile = cProfile.Profile()
	started = time.perf_counter()
	try:
		profile.enable()
		ran = _drain_in_process()
		profile.disable()
	finally:
		wall = time.perf_counter() - started
		for undo in restore:
			undo()
	drain_queues()
	delete_org_jobs(organization)
	if not ran:
		print("\n### Per-job profile: no job ran")
		return
	stats = pstats.Stats(profile)
	steps = _step_seconds(stats)
	per_job_ms = wall / ran * 1000
	print(
		f"\n### Per-job profile: {ran:,} drained demo_echo jobs in one process ({per_job_ms:.2f} ms a job)\n"
	)
	print("Under cProfile (which slows Python code, not the database or Redis); step times are cumulative,")
	print("so a step's time includes the statements and round trips it makes.\n")
	print("| step (main thread) | ms per job | share of wall |")
	print("|---|---|---|")
	for label, seconds in steps:
		ms = seconds / ran * 1000
		print(f"| {label} | {ms:.3f} | {ms / per_job_ms:.0%} |")
	print(f"| **whole job, wall** | **{per_job_ms:.3f}** | 100% |")
	print("\n| per job | main thread | other threads (supervision, side channel) |")
	print("|---|---|---|")
	print(f"| database statements | {sql.calls['main'] / ran:.1f} | {sql.calls['other threads'] / ran:.1f} |")
	print(
		f"| database time, ms | {sql.seconds['main'] / ran * 1000:.3f} | {sql.seconds['other threads'] / ran * 1000:.3f} |"
	)
	print(f"| commits (all threads) | {sql.commits / ran:.2f} | |")
	print(f"| Redis round trips | {rq.calls['main'] / ran:.2f} | {rq.calls['other threads'] / ran:.2f} |")
	print(
		f"| Redis time, ms | {rq.seconds['main'] / ran * 1000:.3f} | {rq.seconds['other threads'] / ran * 1000:.3f} |"
	)
	opened = sum(connections.calls.values())
	print(f"| database connections opened | {opened / ran:.2f} | |")
	print(f"| threads alive after the drain (before: {threads_before}) | {threading.active_count()} | |")
	print("\n| statement (literals left out) | per job | ms per job |")
	print("|---|---|---|")
	for kind, (count, seconds) in sorted(sql.statements.items(), key=lambda item: -item[1][1]):
		if count / ran >= 0.05:
			print(f"| `{kind}` | {count / ran:.2f} | {seconds / ran * 1000:.3f} |")
	print("\nTop functions by own time (all jobs):\n")
	print("```")
	stats.sort_stats("tottime").print_stats(15)
	print("```", flush=True)
