"""Section ``upkeep``: one upkeep pass (between full sweeps) with 100,000 jobs each Pending with
``run_at`` tomorrow, Retrying until tomorrow, and Queued."""

import statistics
import time

import frappe

from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs
from dartwing.dartwing_core.background_jobs import clock, upkeep


def upkeep_pass_cost(organization: str, backlog: int = 100_000, passes: int = 20) -> list[float]:
	"""Milliseconds per upkeep pass (in this process, between full sweeps) over a large backlog."""
	for status, column, value in (
		("Pending", "run_at_utc", "UTC_TIMESTAMP(6) + INTERVAL 1 DAY"),
		("Retrying", "next_retry_utc", "UTC_TIMESTAMP(6) + INTERVAL 1 DAY"),
		("Queued", "queued_at", "%(site_now)s"),
	):
		frappe.db.sql(
			f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
				job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
				max_retries, timeout_seconds, correlation_id, `{column}`)
			SELECT CONCAT('{BENCH_PREFIX}-UPKEEP-{status}-', seq), NOW(6), NOW(6), 'Administrator',
				'Administrator', 0, 'demo_echo', %(organization)s, %(status)s, 'Normal', 'short', '{{}}',
				MD5(seq), 1, 3, 60, MD5(seq), {value}
			FROM seq_1_to_{backlog}""",
			{"organization": organization, "status": status, "site_now": clock.site_now()},
		)
		frappe.db.commit()
	frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
	state, runner = upkeep.SiteState(), upkeep.runner_id()
	upkeep.upkeep_pass(state, runner)  # taking the lease makes the first pass a full sweep
	timings = []
	for _ in range(passes):
		time.sleep(upkeep.PASS_SECONDS)
		started = time.perf_counter()
		upkeep.upkeep_pass(state, runner)
		timings.append((time.perf_counter() - started) * 1000)
	from frappe.utils.background_jobs import get_redis_conn

	get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
	delete_org_jobs(organization)
	return timings


def section_upkeep(organization: str, **_) -> None:
	timings = upkeep_pass_cost(organization)
	print("\n### 9. One upkeep pass between full sweeps, 100,000 jobs each Pending (run_at tomorrow),")
	print("Retrying (due tomorrow) and Queued (ms)\n")
	print("| passes | p50 | max |")
	print("|---|---|---|")
	print(f"| {len(timings)} | {statistics.median(timings):.1f} | {max(timings):.1f} |", flush=True)
