"""Retention on a real site: exactly the expired ended jobs go, with their logs, in batches."""

from datetime import timedelta

import frappe
import pytest
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import health, metrics, retention
from dartwing.tests.integration import helpers


def age(job: str, status: str, days: float) -> None:
	"""Pretend ``job`` ended (or is still ``status``) ``days`` ago."""
	finished = now_datetime() - timedelta(days=days)
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET status = %s, finished_at = %s, dedup_key = NULL WHERE name = %s",
		(
			status,
			finished if status in ("Completed", "Failed", "Canceled", "Dead Letter", "Timed Out") else None,
			job,
		),
	)
	frappe.db.sql("UPDATE `tabJob Execution Log` SET timestamp = %s WHERE job = %s", (finished, job))


def existing(names) -> set[str]:
	frappe.db.rollback()
	return set(frappe.get_all("Background Job", filters={"name": ("in", list(names))}, pluck="name"))


def log_count(names) -> int:
	return frappe.db.count("Job Execution Log", {"job": ("in", list(names))})


@pytest.fixture
def quiet_site():
	"""Retention runs over the whole site: start from no other expired jobs."""
	retention.purge_expired()
	frappe.db.commit()


def test_expired_ended_jobs_go_with_their_logs_and_nothing_else_does(org, job_type_factory, quiet_site):
	short = job_type_factory(retention_days=1)
	default = job_type_factory(retention_days=0)  # the settings' default: 30 days
	submit = lambda job_type, n: helpers.submit_as(org.user, job_type, {"n": n})["job_id"]  # noqa: E731

	expired = []
	for n, status in enumerate(("Completed", "Failed", "Canceled", "Dead Letter", "Timed Out")):
		expired.append(submit(short, n))
		age(expired[-1], status, days=3)
	expired.append(submit(default, 100))
	age(expired[-1], "Completed", days=40)

	kept = {
		"recent under a 1-day retention": submit(short, 10),
		"under the 30-day default": submit(default, 11),
		"still running": submit(short, 12),
		"still retrying": submit(short, 13),
		"parent of an active job": submit(short, 14),
	}
	age(kept["recent under a 1-day retention"], "Completed", days=0.5)
	age(kept["under the 30-day default"], "Completed", days=10)
	age(kept["still running"], "Running", days=3)
	age(kept["still retrying"], "Retrying", days=3)
	age(kept["parent of an active job"], "Completed", days=3)
	child = helpers.submit_as(org.user, short, {"n": 15}, depends_on=kept["parent of an active job"])[
		"job_id"
	]
	frappe.db.sql("UPDATE `tabBackground Job` SET status = 'Pending' WHERE name = %s", child)
	frappe.db.commit()
	assert log_count(expired) >= len(expired)

	totals = retention.purge_expired(batch_size=2)

	assert existing(expired) == set()
	assert existing(kept.values()) == set(kept.values()), "retention deleted a job it should keep"
	assert totals["jobs"] == len(expired) and totals["batches"] == 3 and totals["complete"]
	assert log_count(expired) == 0
	assert log_count(kept.values()) >= len(kept)
	orphans = frappe.db.sql(
		"""SELECT COUNT(*) FROM `tabJob Execution Log` log
		LEFT JOIN `tabBackground Job` job ON job.name = log.job WHERE job.name IS NULL"""
	)[0][0]
	dangling = frappe.db.sql(
		"""SELECT COUNT(*) FROM `tabBackground Job Dependency` dependency
		LEFT JOIN `tabBackground Job` job ON job.name = dependency.parent
		LEFT JOIN `tabBackground Job` parent_job ON parent_job.name = dependency.depends_on
		WHERE job.name IS NULL OR parent_job.name IS NULL"""
	)[0][0]
	assert (orphans, dangling) == (0, 0)


def test_a_run_stops_at_its_time_budget_and_the_next_one_finishes(org, job_type_factory, quiet_site):
	short = job_type_factory(retention_days=1)
	jobs = [helpers.submit_as(org.user, short, {"n": n})["job_id"] for n in range(6)]
	for job in jobs:
		age(job, "Completed", days=2)
	frappe.db.commit()

	first = retention.purge_expired(batch_size=2, time_budget_seconds=0)
	assert first == {"jobs": 0, "logs": 0, "batches": 0, "complete": False}
	second = retention.purge_expired(batch_size=2)
	assert second["jobs"] == 6 and second["complete"]


def test_job_execution_log_is_in_log_settings():
	log_settings = frappe.get_doc("Log Settings")
	assert "Job Execution Log" in {row.ref_doctype for row in log_settings.logs_to_clear}


def test_the_maintenance_job_types_run_on_a_real_worker(org):
	jobs = {
		name: helpers.submit_as("Administrator", name, organization=org.name)["job_id"]
		for name in ("dartwing_retention", "dartwing_queue_health")
	}
	helpers.run_burst_worker()
	for job in jobs.values():
		assert helpers.job(job).status == "Completed"
	cleanup = frappe.parse_json(helpers.job(jobs["dartwing_retention"]).result)
	assert cleanup["complete"] is True
	signals = health.latest()
	assert set(signals) >= {"stuck_queued", "stale_running", "overdue_retries", "oldest_queued_seconds"}
	assert metrics.job_metrics()["health"] == signals, "managers see the latest signals in the metrics"
