"""Section ``retry``: one retry-queue tick with 1k, 10k and 100k due jobs, and with 10k due beside
100k and 1M other jobs."""

import time

import frappe

from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs, drain_queues
from dartwing.benchmarks.growth import generate_jobs
from dartwing.dartwing_core.background_jobs import retry_queue


def retry_tick(organization: str, due: int = 10_000) -> float:
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, next_retry_at, next_retry_utc, correlation_id)
		SELECT CONCAT('{BENCH_PREFIX}-RETRY-', seq), %(now)s, %(now)s, 'Administrator', 'Administrator', 0,
			'demo_echo', %(organization)s, 'Retrying', 'Normal', ELT(1 + seq %% 3, 'short', 'default', 'long'),
			'{{}}', MD5(seq), 1, 3, 60, %(now)s - INTERVAL 1 MINUTE, UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE, MD5(seq)
		FROM seq_1_to_{due}""",
		{"organization": organization, "now": frappe.utils.now_datetime()},
	)
	frappe.db.commit()
	started = time.perf_counter()
	queued = retry_queue.requeue_due_retries()
	took = time.perf_counter() - started
	if queued != due:
		print(f"  warning: the tick queued {queued} of {due}")
	drain_queues()
	frappe.db.sql(f"DELETE FROM `tabBackground Job` WHERE name LIKE '{BENCH_PREFIX}-RETRY-%%'")
	frappe.db.sql(
		"DELETE FROM `tabJob Execution Log` WHERE organization = %s AND event = 'Requeued'", organization
	)
	frappe.db.commit()
	return took


def section_retry(
	organization: str, due_sizes=(1_000, 10_000, 100_000), history=(100_000, 1_000_000), **_
) -> None:
	"""One retry tick by how many jobs are due, then 10,000 due beside a growing history."""
	print("\n### 5. One retry-queue tick (jobs of three queues, all due)\n")
	print("| due jobs | other jobs in the table | seconds | µs per job |")
	print("|---|---|---|---|")
	delete_org_jobs(organization)
	rows = [(due, 0) for due in due_sizes] + [(10_000, size) for size in history]
	generated = 0
	for due, other in rows:
		if other > generated:
			generate_jobs(organization, generated, other)
			generated = other
		took = retry_tick(organization, due)
		print(f"| {due:,} | {other:,} | {took:.2f} | {took / due * 1e6:.0f} |", flush=True)
	delete_org_jobs(organization)
