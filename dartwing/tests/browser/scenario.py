"""Records the browser tests work with, made through the engine (never by writing job rows),
and small helpers for the browser: logging in, waiting for the Desk.

Contract: ``Scenario.create()`` makes an Active organization with two members, a job manager
and a plain job user, and three job types that stop in a known status:
``<prefix>_fail`` (permanent error: Failed), ``<prefix>_retry`` (transient error, next retry an
hour away: Retrying) and ``<prefix>_dead`` (transient error, no retries: Dead Letter).
``cleanup()`` cancels what is still active and deletes the jobs, types, organization and users.
"""

import time
from datetime import timedelta

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.cancellation import cancel
from dartwing.dartwing_core.background_jobs.retention import delete_jobs
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.tests.integration.helpers import (
	job,
	wait_for,
	wait_for_status,
)

PASSWORD = "Dartwing-Browser-Pass-1"
FAILED_STATUSES = (states.FAILED, states.TIMED_OUT, states.DEAD_LETTER)


def card_counts() -> dict[str, int]:
	"""What the workspace's number cards should show, counted here independently."""
	frappe.db.rollback()
	by_status = dict(frappe.db.sql("SELECT status, COUNT(*) FROM `tabBackground Job` GROUP BY status"))
	failed_24h = frappe.db.sql(
		"SELECT COUNT(*) FROM `tabBackground Job` WHERE status IN %s AND finished_at >= %s",
		(FAILED_STATUSES, now_datetime() - timedelta(hours=24)),
	)[0][0]
	return {
		"Queued": int(by_status.get(states.QUEUED, 0)),
		"Running": int(by_status.get(states.RUNNING, 0)),
		"Retrying": int(by_status.get(states.RETRYING, 0)),
		"Failed (last 24 h)": int(failed_24h),
		"Dead Letter": int(by_status.get(states.DEAD_LETTER, 0)),
	}


def wait_until_idle(timeout: float = 120) -> None:
	"""No job of this site waiting for or holding a worker, so the next one starts at once."""
	wait_for(
		lambda: not frappe.db.sql(
			"SELECT 1 FROM `tabBackground Job` WHERE status IN ('Queued', 'Running') LIMIT 1"
		),
		timeout,
		interval=0.5,
		message="the site's workers to be idle",
	)


def login(page, base_url: str, user: str) -> None:
	page.goto(f"{base_url}/login")
	page.fill("#login_email", user)
	page.fill("#login_password", PASSWORD)
	page.click(".btn-login")
	page.wait_for_url("**/app**", timeout=30_000)
	wait_for_desk(page)


def wait_for_desk(page) -> None:
	page.wait_for_function("() => window.frappe && frappe.boot && frappe.boot.user", timeout=30_000)


def wait_for_socket(page, timeout: float = 15_000) -> None:
	page.wait_for_function(
		"() => frappe.realtime.socket && frappe.realtime.socket.connected", timeout=timeout
	)


class Scenario:
	def __init__(self, prefix: str):
		self.prefix = prefix
		self.organization = f"{prefix}-org"
		self.manager = f"{prefix}-manager@example.com"
		self.member = f"{prefix}-member@example.com"
		self.fail_type = f"{prefix}_fail"
		self.retry_type = f"{prefix}_retry"
		self.dead_type = f"{prefix}_dead"

	@classmethod
	def create(cls) -> "Scenario":
		made = cls(f"browser{frappe.generate_hash(length=6)}")
		made._make_user(made.manager, ("Background Job Manager", "Background Job User"))
		made._make_user(made.member, ("Background Job User",))
		frappe.get_doc(
			{
				"doctype": "Organization",
				"organization_name": made.organization,
				"status": "Active",
				"members": [{"user": made.manager}, {"user": made.member}],
			}
		).insert(ignore_permissions=True)
		common = {"doctype": "Job Type", "handler": "demo_fail", "queue": "default", "timeout_seconds": 60}
		for name, values in (
			(made.fail_type, {"max_retries": 0}),
			(
				made.retry_type,
				{"max_retries": 2, "backoff_strategy": "Schedule", "backoff_schedule": "3600,3600"},
			),
			(made.dead_type, {"max_retries": 0}),
		):
			frappe.get_doc({**common, "job_type_name": name, "title": name, **values}).insert(
				ignore_permissions=True
			)
		frappe.db.commit()
		return made

	@staticmethod
	def _make_user(email: str, roles) -> None:
		user = frappe.get_doc(
			{
				"doctype": "User",
				"email": email,
				"first_name": email.split("@")[0],
				"send_welcome_email": 0,
				"new_password": PASSWORD,
			}
		)
		user.flags.ignore_password_policy = True
		user.insert(ignore_permissions=True)
		user.add_roles(*roles)

	def submit_as(self, user: str, job_type: str, parameters: dict, **kwargs) -> str:
		frappe.set_user(user)
		try:
			result = submit(job_type, parameters=parameters, organization=self.organization, **kwargs)
			frappe.db.commit()
		finally:
			frappe.set_user("Administrator")
		return result["job_id"]

	def make_finished_jobs(self) -> dict[str, str]:
		"""One Failed, one Retrying and one Dead Letter job, each waited for."""
		token = now_datetime().isoformat()
		made = {
			states.FAILED: self.submit_as(
				self.manager, self.fail_type, {"error": "permanent", "token": token}
			),
			states.RETRYING: self.submit_as(
				self.manager, self.retry_type, {"error": "transient", "fail_times": 5, "token": token}
			),
			states.DEAD_LETTER: self.submit_as(
				self.manager, self.dead_type, {"error": "transient", "token": token}
			),
		}
		for status, name in made.items():
			wait_for_status(name, status)
		return made

	def cleanup(self) -> None:
		frappe.db.rollback()
		frappe.set_user("Administrator")
		jobs = frappe.get_all(
			"Background Job", filters={"organization": self.organization}, fields=["name", "status"]
		)
		for row in jobs:
			if row.status not in states.TERMINAL:
				try:
					cancel(row.name)
					frappe.db.commit()
				except Exception:
					frappe.db.rollback()
		# A running job ends at its next progress call; give it a moment, then delete everything.
		try:
			wait_for(
				lambda: not frappe.db.sql(
					"SELECT 1 FROM `tabBackground Job` WHERE organization = %s AND status = 'Running'",
					self.organization,
				),
				timeout=30,
				message="the scenario's running jobs to stop",
			)
		except AssertionError:
			pass
		delete_jobs([row.name for row in jobs])
		frappe.db.delete("Job Execution Log", {"organization": self.organization})
		for job_type in (self.fail_type, self.retry_type, self.dead_type):
			frappe.delete_doc("Job Type", job_type, ignore_permissions=True, force=True)
		frappe.db.delete("Organization Member", {"parent": self.organization})
		frappe.db.delete("Organization", {"name": self.organization})
		for user in (self.manager, self.member):
			frappe.delete_doc("User", user, ignore_permissions=True, force=True)
		frappe.db.commit()
