"""``bench --site S dartwing ...`` run as real processes against the site."""

import json
import subprocess
import sys

import frappe

from dartwing.processes import frappe_cli
from dartwing.tests.integration import helpers


def dartwing(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
	return subprocess.run(
		frappe_cli(frappe.local.site, "dartwing", *args),
		cwd=helpers.SITES_PATH,
		capture_output=True,
		text=True,
		timeout=timeout,
	)


def answer(result: subprocess.CompletedProcess) -> dict:
	assert result.returncode == 0, result.stderr[-2000:]
	return json.loads(result.stdout[result.stdout.index("{") :])


def test_submit_status_list_cancel_retry(org):
	submitted = answer(
		dartwing("submit", "demo_echo", "-p", '{"cli": 1}', "-o", org.name, "--user", org.user)
	)
	job_id = submitted["job_id"]
	assert helpers.job(job_id).owner == org.user and submitted["deduplicated"] is False

	status = answer(dartwing("status", job_id, "--user", org.user))
	assert status["job_id"] == job_id and "traceback" not in status

	listed = dartwing("list", "-o", org.name, "--user", org.user)
	assert listed.returncode == 0 and job_id in listed.stdout and "1 jobs" in listed.stdout

	canceled = answer(dartwing("cancel", job_id, "--user", org.user))
	assert canceled == {"job_id": job_id, "status": "Canceled"}

	not_retryable = dartwing("retry", job_id)
	assert not_retryable.returncode == 1 and "can be retried" in not_retryable.stderr

	failed = helpers.submit_as(org.user, "demo_fail", {"error": "permanent"}, organization=org.name)["job_id"]
	helpers.run_burst_worker()
	assert helpers.job(failed).status == "Failed"
	# Only managers retry; Administrator is one.
	refused = dartwing("retry", failed, "--user", org.user)
	assert refused.returncode == 1 and "Manager" in refused.stderr
	retried = answer(dartwing("retry", failed, "-p", '{"error": "permanent", "fail_times": 0}'))
	assert retried == {"job_id": failed, "status": "Queued"}
	helpers.run_burst_worker()
	assert helpers.job(failed).status == "Completed"


def test_bad_input_exits_1_with_the_reason(org):
	before = frappe.db.count("Background Job", {"organization": org.name})
	for args, reason in (
		(("submit", "no_such_type", "-o", org.name), "does not exist"),
		(("submit", "demo_echo", "-p", "[1]", "-o", org.name), "JSON object"),
		(("status", "JOB-2026-99999999"), "not found"),
	):
		result = dartwing(*args, "--user", org.user)
		assert result.returncode == 1 and reason in result.stderr, result.stderr[-500:]
	assert frappe.db.count("Background Job", {"organization": org.name}) == before


def test_pause_resume_and_stats(org, job_type_factory):
	job_type = job_type_factory()
	paused = answer(dartwing("pause", "--job-type", job_type))
	assert paused["paused"] is True
	job_id = helpers.submit_as(org.user, job_type, {"n": 1})["job_id"]
	assert helpers.job(job_id).status == "Pending"

	stats = dartwing("stats")
	assert stats.returncode == 0 and job_type in stats.stdout and "PAUSED" in stats.stdout

	resumed = answer(dartwing("resume", "--job-type", job_type))
	assert resumed["paused"] is False and resumed["jobs_moved"] == 1
	assert helpers.job(job_id).status == "Queued"


def test_demo_submits_and_follows_progress_to_the_end():
	with helpers.Worker():
		result = dartwing("demo", "--jobs", "2", "--seconds", "1", "--timeout", "60")
	assert result.returncode == 0, result.stderr[-2000:]
	jobs = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("JOB-")]
	assert len(set(jobs)) == 2
	assert "100% Completed" in result.stdout
	assert "[" + "#" * 30 + "]" in result.stdout
	for job in set(jobs):
		assert helpers.job(job).status == "Completed"
	helpers.delete_jobs({"name": ("in", list(set(jobs)))})
	frappe.db.commit()
