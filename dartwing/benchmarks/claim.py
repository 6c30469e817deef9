"""Section ``claim``: the claim of the next job with 1k, 10k, 100k and 1M jobs queued in one queue:
the claim's candidate query and a whole claim, beside the query the claim ran before
``claim_order`` (priority with aging computed per row and sorted), in the same run."""

import statistics
import time

import frappe

from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs, percentile
from dartwing.dartwing_core.background_jobs import clock, priority, settings

CLAIM_QUEUE = "dartwing-bench-claim"


def generate_queued(organization: str, start: int, end: int, organizations: int = 1) -> None:
	"""Queued jobs ``start+1 .. end`` of one queue, mixed priorities, queued over the last 30 days,
	with the claim key the engine gives them (``priority.claim_key``), in one statement; with the
	organizations' turn rows the engine keeps for them (``turns``). Over ``organizations`` > 1,
	job ``n`` belongs to ``organization-k`` (k = n div 4 mod organizations, so each has every
	priority; no Organization row: the claim does not read it)."""
	from dartwing.dartwing_core.background_jobs import turns

	owner = "%(organization)s"
	if organizations > 1:
		owner = f"CONCAT(%(organization)s, '-', FLOOR(seq / 4) %% {int(organizations)})"
	aging = max(settings.get_settings().aging_seconds, 1)
	offset = round((clock.utc_now() - clock.site_now()).total_seconds())
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, claim_order, correlation_id, rq_job_id)
		SELECT CONCAT('{BENCH_PREFIX}-Q-', seq), queued, queued, 'Administrator', 'Administrator', 0,
			'demo_echo', {owner}, 'Queued', ELT(1 + seq %% 4, 'Low', 'Normal', 'High', 'Critical'),
			'{CLAIM_QUEUE}', '{{}}', MD5(seq), 0, 0, 60, queued,
			TIMESTAMPDIFF(MICROSECOND, '1970-01-01', queued) / 1000000 + %(offset)s - (seq %% 4) * %(aging)s,
			MD5(seq), CONCAT('{BENCH_PREFIX}-token-', seq)
		FROM (SELECT seq, %(now)s - INTERVAL (seq * 2.592) SECOND AS queued FROM seq_{start + 1}_to_{end}) generated""",
		{"organization": organization, "now": frappe.utils.now_datetime(), "offset": offset, "aging": aging},
	)
	turns.repair()
	frappe.db.commit()


def _query_ms(sql: str, values: dict, calls: int) -> list[float]:
	timings = []
	for _ in range(calls):
		started = time.perf_counter()
		frappe.db.sql(sql, values)
		timings.append((time.perf_counter() - started) * 1000)
	return timings


def section_claim(
	organization: str, sizes=(1_000, 10_000, 100_000, 1_000_000), calls: int = 200, **_
) -> None:
	"""The claim with growing backlogs of one queue; prints a markdown table (ms)."""
	from dartwing.dartwing_core.background_jobs import claiming

	values = {
		"queue": CLAIM_QUEUE,
		"now": frappe.utils.now_datetime(),
		"aging": max(settings.get_settings().aging_seconds, 1),
	}
	keyed = f"""SELECT name FROM `tabBackground Job` WHERE status = 'Queued' AND queue = %(queue)s
		ORDER BY claim_order ASC, queued_at ASC LIMIT {claiming.CLAIM_CANDIDATES}"""
	computed = f"""SELECT name FROM `tabBackground Job` WHERE status = 'Queued' AND queue = %(queue)s
		ORDER BY {priority.PRIORITY_SQL} + TIMESTAMPDIFF(SECOND, queued_at, %(now)s) / %(aging)s DESC, queued_at ASC
		LIMIT {claiming.CLAIM_CANDIDATES}"""
	print(f"\n### 7. Claim of the next job by backlog (one queue; ms; {calls} calls each)\n")
	print(
		"| queued jobs | candidates p50 | candidates p95 | whole claim p50 | whole claim p95 | before claim_order: candidates p50 |"
	)
	print("|---|---|---|---|---|---|")
	generated = 0
	for size in sizes:
		generate_queued(organization, generated, size)
		generated = size
		frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
		candidates = _query_ms(keyed, values, calls)
		old = _query_ms(computed, values, max(calls // 20, 5) if size >= 100_000 else calls)
		whole = []
		for _ in range(calls):
			started = time.perf_counter()
			claimed = claiming.claim(CLAIM_QUEUE, None, None)
			whole.append((time.perf_counter() - started) * 1000)
			assert claimed, "nothing claimed"
			frappe.db.rollback()
		print(
			f"| {size:,} | {statistics.median(candidates):.2f} | {percentile(candidates, 95):.2f} | "
			f"{statistics.median(whole):.2f} | {percentile(whole, 95):.2f} | {statistics.median(old):.2f} |",
			flush=True,
		)
	delete_org_jobs(organization)
	frappe.db.delete("Background Job Turn", {"queue": CLAIM_QUEUE})
	frappe.db.commit()
