"""Helpers for tier 2 tests: records, real RQ workers, and waiting for outcomes."""

import os
import signal
import subprocess
import sys
import time

import frappe
from frappe.utils.background_jobs import get_queue, get_redis_conn

from dartwing.dartwing_core.background_jobs import states
from dartwing.processes import frappe_cli

SITES_PATH = os.path.abspath(os.environ.get("DARTWING_SITES_PATH", "."))
QUEUES = ("short", "default", "long")


def connect_test_site() -> None:
	"""Connect this process to ``$DARTWING_SITE`` as Administrator; the site must allow tests."""
	import pytest

	site = os.environ.get("DARTWING_SITE")
	if not site:
		raise pytest.UsageError("Set DARTWING_SITE to the site the tests may use")
	frappe.init(site=site, sites_path=SITES_PATH)
	frappe.connect()
	frappe.set_user("Administrator")
	if not frappe.local.conf.get("allow_tests"):
		raise pytest.UsageError(
			f"Site {site} does not allow tests (set allow_tests: true in its site_config)"
		)


def start_well_inside_a_rate_window(window_seconds: int = 60, margin: float = 20) -> None:
	"""Rate limits count in fixed windows; wait for a fresh one if this one ends within ``margin``."""
	left = window_seconds - time.time() % window_seconds
	if left < margin:
		time.sleep(left + 0.5)


def unique(prefix: str) -> str:
	return f"{prefix}-{frappe.generate_hash(length=8)}"


def make_user(email: str | None = None, roles=("Background Job User",)) -> str:
	email = email or f"{unique('user')}@example.com"
	if not frappe.db.exists("User", email):
		user = frappe.get_doc(
			{
				"doctype": "User",
				"email": email,
				"first_name": email.split("@")[0],
				"send_welcome_email": 0,
				"new_password": "Dartwing-Test-Pass-1",
			}
		)
		user.flags.ignore_password_policy = True
		user.insert(ignore_permissions=True)
		user.add_roles(*roles)
	frappe.db.commit()
	# Frappe queues contact / gravatar jobs for a new user; they are not ours to run.
	drain_queues()
	return email


def make_org(name: str | None = None, members=(), status="Active") -> str:
	name = name or unique("org")
	frappe.get_doc(
		{
			"doctype": "Organization",
			"organization_name": name,
			"status": status,
			"members": [{"user": user} for user in members],
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return name


def make_org_with_user() -> tuple[str, str]:
	user = make_user()
	return make_org(members=[user]), user


def delete_jobs(filters: dict) -> None:
	from dartwing.dartwing_core.background_jobs.retention import delete_jobs as delete_with_logs

	delete_with_logs(frappe.get_all("Background Job", filters=filters, pluck="name"))


def cleanup_org(organization: str) -> None:
	frappe.db.rollback()
	delete_jobs({"organization": organization})
	frappe.db.delete("Job Execution Log", {"organization": organization})
	members = frappe.get_all("Organization Member", filters={"parent": organization}, pluck="user")
	frappe.db.delete("Organization Member", {"parent": organization})
	frappe.db.delete("Organization", {"name": organization})
	for user in members:
		if user.endswith("@example.com"):
			frappe.delete_doc("User", user, ignore_permissions=True, force=True)
	frappe.db.commit()


def make_job_type(**values) -> str:
	name = values.pop("job_type_name", None) or unique("test_type").replace("-", "_")
	doc = frappe.get_doc(
		{
			"doctype": "Job Type",
			"job_type_name": name,
			"title": name,
			"handler": "demo_echo",
			"queue": "default",
			"timeout_seconds": 60,
			"max_retries": 0,
			**values,
		}
	)
	doc.insert(ignore_permissions=True)
	frappe.db.commit()
	return name


def delete_job_type(name: str) -> None:
	frappe.db.rollback()
	delete_jobs({"job_type": name})
	frappe.delete_doc("Job Type", name, ignore_permissions=True, force=True)
	frappe.db.commit()


def submit_as(user: str, job_type: str, parameters=None, **kwargs) -> dict:
	from dartwing.dartwing_core.background_jobs.submit import submit

	frappe.set_user(user)
	try:
		result = submit(job_type, parameters, **kwargs)
		frappe.db.commit()
		return result
	finally:
		frappe.set_user("Administrator")


def job(name: str) -> frappe._dict:
	frappe.db.rollback()
	return frappe.db.sql("SELECT * FROM `tabBackground Job` WHERE name = %s", name, as_dict=True)[0]


def events(name: str) -> list[str]:
	frappe.db.rollback()
	return frappe.db.sql_list(
		"SELECT event FROM `tabJob Execution Log` WHERE job = %s ORDER BY timestamp, name", name
	)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.db.rollback()
		value = predicate()
		if value:
			return value
		time.sleep(interval)
	raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_for_status(name: str, wanted, timeout: float = 30) -> frappe._dict:
	wanted = {wanted} if isinstance(wanted, str) else set(wanted)
	wait_for(
		lambda: job(name).status in wanted,
		timeout,
		message=f"{name} to become {wanted} (is {job(name).status})",
	)
	return job(name)


def _worker_command(queues, burst: bool) -> list[str]:
	command = frappe_cli(frappe.local.site, "worker", "--queue", ",".join(queues))
	if burst:
		command.append("--burst")
	return command


def run_burst_worker(queues=QUEUES, timeout: float = 120) -> subprocess.CompletedProcess:
	"""A real RQ worker process that drains the queues and exits."""
	return subprocess.run(
		_worker_command(queues, burst=True),
		cwd=SITES_PATH,
		capture_output=True,
		text=True,
		timeout=timeout,
		env={**os.environ, "PYTHONUNBUFFERED": "1"},
	)


class Worker:
	"""A started RQ worker process (``bench worker``), stopped with SIGTERM or killed with SIGKILL."""

	def __init__(self, queues=QUEUES):
		self.log = open(os.path.join(SITES_PATH, "..", "logs", "dartwing-test-worker.log"), "a")
		self.process = subprocess.Popen(
			_worker_command(queues, burst=False),
			cwd=SITES_PATH,
			stdout=self.log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)

	def horses(self) -> list:
		"""The worker's work horses (``psutil.Process``), if any."""
		import psutil

		try:
			return psutil.Process(self.process.pid).children(recursive=True)
		except psutil.NoSuchProcess:
			return []

	def send(self, sig) -> None:
		"""Signal the worker and its work horse (RQ forks the horse into a session of its own)."""
		for process in [self.process, *self.horses()]:
			try:
				os.kill(process.pid, sig)
			except ProcessLookupError:
				pass

	def kill(self, sig=signal.SIGKILL):
		self.send(sig)
		self.process.wait(timeout=30)

	def stop(self):
		self.kill(signal.SIGTERM)

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.kill(signal.SIGKILL)
		self.log.close()


def drain_queues() -> None:
	"""Empty the RQ queues of this bench so tests don't see each other's tokens."""
	for name in QUEUES:
		get_queue(name).empty()


def redis_flushall() -> None:
	get_redis_conn().flushall()


def terminal(name: str) -> bool:
	return job(name).status in states.TERMINAL
