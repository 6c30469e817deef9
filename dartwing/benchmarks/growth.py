"""Section ``growth``: with 1k, 10k, 100k and 1M jobs in the table (generated in bulk with MariaDB's
sequence engine, spread over 30 days): the metrics rollups' backfill and a refresh after it,
``get_job_metrics`` over 24 hours, 7 and 30 days, the Job Type Health report over 30 days and the
workspace's cards and charts (``api.desk``), beside the raw scan the metrics made before the
rollups (30 days); and submit latency."""

import statistics
import time
from datetime import timedelta

import frappe

from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs, drain_queues, percentile, timed
from dartwing.dartwing_core.background_jobs import metrics, metrics_rollup, metrics_window
from dartwing.dartwing_core.background_jobs.submit import submit


def generate_jobs(organization: str, start: int, end: int) -> None:
	"""Rows ``start+1 .. end`` of finished and waiting jobs, spread over 30 days, in one statement."""
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, started_at, finished_at, wait_time, run_time,
			correlation_id)
		SELECT CONCAT('{BENCH_PREFIX}-', seq), created, created, 'Administrator', 'Administrator', 0,
			ELT(1 + seq %% 4, 'demo_echo', 'demo_sleep', 'demo_fail', 'demo_http'), %(organization)s,
			ELT(1 + seq %% 20, 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed',
				'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed',
				'Failed', 'Dead Letter', 'Timed Out', 'Canceled', 'Queued', 'Pending', 'Retrying'),
			ELT(1 + seq %% 4, 'Low', 'Normal', 'High', 'Critical'),
			ELT(1 + seq %% 3, 'short', 'default', 'long'), '{{}}', MD5(seq), 1, 3, 60,
			created, created + INTERVAL 1 SECOND, created + INTERVAL 3 SECOND, (seq %% 1000) / 100, (seq %% 700) / 100,
			MD5(seq)
		FROM (SELECT seq, %(now)s - INTERVAL (seq %% 43200) MINUTE AS created FROM seq_{start + 1}_to_{end}) generated""",
		{"organization": organization, "now": frappe.utils.now_datetime()},
	)
	frappe.db.commit()


def raw_metrics_scan(since) -> None:
	"""What ``job_metrics`` read before the rollups: the window's jobs, grouped, and the histograms."""
	where, values = "creation >= %(since)s", {"since": since}
	frappe.db.sql(
		f"""SELECT job_type, status, queue, priority, COUNT(*),
			SUM(finished_at IS NOT NULL AND finished_at >= %(since)s), SUM({metrics_window.RAN_SQL}),
			SUM(CASE WHEN {metrics_window.RAN_SQL} THEN run_time END), SUM(CASE WHEN {metrics_window.RAN_SQL} THEN wait_time END)
		FROM `tabBackground Job` WHERE {where} GROUP BY job_type, status, queue, priority""",
		values,
	)
	metrics_window.type_percentiles(where, values)


def workspace_figures() -> None:
	"""What the workspace asks for: its number card and its two charts."""
	from dartwing.dartwing_core.api import desk

	desk.failed_last_24h()
	desk.jobs_per_hour()
	desk.run_time_by_job_type()


def section_growth(organization: str, sizes=(1_000, 10_000, 100_000, 1_000_000), **_) -> None:
	from dartwing.dartwing_core.report.job_type_health import job_type_health

	print("\n### 4. Growth: metrics, report, workspace and submit latency by table size (ms)\n")
	print(
		"| jobs in table | rollup backfill (s) | refresh after 20 submits | metrics p50 (24 h) | metrics p95 (24 h) "
		"| metrics p95 (7 days) | metrics p50 (30 days) | metrics p95 (30 days) | raw scan p50 (30 days, before rollups) "
		"| Job Type Health p95 (30 days) | workspace card + charts p95 | submit p50 |"
	)
	print("|---|---|---|---|---|---|---|---|---|---|---|---|")
	generated = 0
	for size in sizes:
		generate_jobs(organization, generated, size)
		generated = size
		frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
		# The generated rows are written in the past (modified = creation): a backfill stores them.
		backfill = metrics_rollup.rebuild()
		for table in (
			metrics_rollup.COUNT_TABLE,
			metrics_rollup.HISTOGRAM_TABLE,
			metrics_rollup.PERIOD_TABLE,
		):
			frappe.db.sql(f"ANALYZE TABLE `tab{table}`")
		now = frappe.utils.now_datetime()
		day = timed(lambda: metrics.job_metrics(since=str(now - timedelta(hours=24))), 20)
		week = timed(lambda: metrics.job_metrics(since=str(now - timedelta(days=7))), 20)
		month = timed(lambda: metrics.job_metrics(since=str(now - timedelta(days=30))), 20)
		raw = timed(lambda: raw_metrics_scan(now - timedelta(days=30)), 3)
		report_filters = {"from_date": str((now - timedelta(days=30)).date()), "to_date": str(now.date())}
		report = timed(lambda: job_type_health.execute(report_filters), 20)
		workspace = timed(workspace_figures, 20)
		cost = []
		for i in range(20):
			started = time.perf_counter()
			submit("demo_echo", {"growth": size, "i": i}, organization=organization)
			frappe.db.commit()
			cost.append((time.perf_counter() - started) * 1000)
		refresh = timed(lambda: metrics_rollup.refresh(time_budget_seconds=60), 1)
		print(
			f"| {size:,} | {backfill['seconds']:.1f} | {refresh[0]:.0f} | {statistics.median(day):.1f} "
			f"| {percentile(day, 95):.1f} | {percentile(week, 95):.1f} | {statistics.median(month):.1f} "
			f"| {percentile(month, 95):.1f} | {statistics.median(raw):.0f} | {percentile(report, 95):.1f} "
			f"| {percentile(workspace, 95):.1f} | {statistics.median(cost):.2f} |",
			flush=True,
		)
	drain_queues()
	delete_org_jobs(organization)
	metrics_rollup.refresh(time_budget_seconds=600)
