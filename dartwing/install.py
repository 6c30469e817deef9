"""Install and migrate hooks: roles, demo and maintenance job types, hook schedules, idempotently.

Existing records are never overwritten, so a site's edits to the demo job types survive
``bench migrate``. Demo job types are installed enabled only where demos belong
(``demo_job_types_enabled_by_default``: developer mode, or a site that allows tests); elsewhere
they are installed disabled, and enabling them is a job manager's choice in Desk.
"""

import frappe

ROLES = ("Background Job User", "Background Job Manager")
WORKSPACE = "Background Jobs"

DEMO_JOB_TYPES = (
	{
		"job_type_name": "demo_sleep",
		"title": "Demo: sleep with progress",
		"handler": "demo_sleep",
		"queue": "default",
		"timeout_seconds": 600,
		"max_retries": 0,
		"description": "Sleeps for `seconds` in `steps`, reporting progress and honouring cancel.",
	},
	{
		"job_type_name": "demo_echo",
		"title": "Demo: echo",
		"handler": "demo_echo",
		"queue": "short",
		"timeout_seconds": 60,
		"max_retries": 0,
		"description": "Returns its parameters.",
	},
	{
		"job_type_name": "demo_fail",
		"title": "Demo: fail, then succeed",
		"handler": "demo_fail",
		"queue": "default",
		"timeout_seconds": 30,
		"max_retries": 3,
		"backoff_strategy": "Schedule",
		"backoff_schedule": "0,5,10",
		"description": "Fails `fail_times` times with `error` (transient, permanent, http_401, http_403, "
		"http_403_rate_limited, http_429, timeout), then succeeds.",
	},
	{
		"job_type_name": "demo_http",
		"title": "Demo: HTTP call",
		"handler": "demo_http",
		"queue": "default",
		"timeout_seconds": 60,
		"max_retries": 3,
		"backoff_strategy": "Schedule",
		"backoff_schedule": "0,5,10",
		"description": "GETs `url` on this machine and classifies the answer.",
	},
)


MAINTENANCE_JOB_TYPES = (
	{
		"job_type_name": "dartwing_retention",
		"title": "Dartwing: retention cleanup",
		"handler": "dartwing_retention",
		"queue": "long",
		"timeout_seconds": 600,
		"max_retries": 2,
		"dedup_window_seconds": 0,
		"description": "Deletes ended jobs older than their job type's retention, with their logs, in batches.",
	},
	{
		"job_type_name": "dartwing_queue_health",
		"title": "Dartwing: queue health check",
		"handler": "dartwing_queue_health",
		"queue": "short",
		"timeout_seconds": 60,
		"max_retries": 0,
		"retention_days": 2,
		"description": "Records stuck and slow signals (queued too long, stale heartbeats, overdue retries).",
	},
)


def ensure_roles() -> None:
	for role in ROLES:
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
				ignore_permissions=True
			)


def demo_job_types_enabled_by_default() -> bool:
	return bool(frappe.conf.developer_mode or frappe.conf.allow_tests)


def ensure_job_types() -> None:
	demo_enabled = int(demo_job_types_enabled_by_default())
	for definition in DEMO_JOB_TYPES + MAINTENANCE_JOB_TYPES:
		if not frappe.db.exists("Job Type", definition["job_type_name"]):
			enabled = demo_enabled if definition in DEMO_JOB_TYPES else 1
			frappe.get_doc({"doctype": "Job Type", **definition, "enabled": enabled}).insert(
				ignore_permissions=True
			)


def ensure_log_settings() -> None:
	"""Job Execution Log joins Log Settings (Frappe only adds hook defaults when it next saves them)."""
	log_settings = frappe.get_single("Log Settings")
	if "Job Execution Log" not in {row.ref_doctype for row in log_settings.logs_to_clear}:
		log_settings.register_doctype("Job Execution Log", 30)
		log_settings.save(ignore_permissions=True)


def ensure_settings_defaults() -> None:
	"""Background Job Settings store a default for every setting that has no value yet (one added
	by an upgrade): a single keeps only the values it was saved with, and its next save would
	write 0 for the others (no shutdown grace, no free recovery)."""
	from dartwing.dartwing_core.background_jobs.settings import DEFAULTS, SETTINGS_DOCTYPE, clear_engine_cache

	stored = frappe.db.get_singles_dict(SETTINGS_DOCTYPE)
	missing = {key: value for key, value in DEFAULTS.items() if stored.get(key) in (None, "")}
	if missing:
		frappe.db.set_single_value(SETTINGS_DOCTYPE, missing)
		clear_engine_cache()


def complete_dev_setup(user: str = "Administrator") -> None:
	"""For a development site (``scripts/setup.sh``): Frappe's setup wizard done with neutral answers
	(English, UTC) and Desk opening on the Background Jobs workspace for ``user``. Idempotent."""
	from frappe.desk.page.setup_wizard.setup_wizard import setup_complete

	if not frappe.db.get_single_value("System Settings", "setup_complete"):
		setup_complete(
			{"language": "English", "country": "United States", "timezone": "UTC", "currency": "USD"}
		)
	frappe.db.set_value("User", user, "default_workspace", WORKSPACE)
	frappe.db.commit()


def after_install() -> None:
	after_migrate()


def after_app_install(app_name: str) -> None:
	from dartwing.dartwing_core.background_jobs import schedules

	if app_name != "dartwing":
		schedules.sync_hook_schedules()


def before_app_uninstall(app_name: str) -> None:
	"""The functions of an app being uninstalled stop running: their Job Types are disabled (their
	jobs' history stays) and the schedules its hooks declared for them are deleted."""
	if app_name == "dartwing":
		return
	job_types = frappe.get_all("Job Type", filters={"method": ("like", f"{app_name}.%")}, pluck="name")
	for schedule in frappe.get_all(
		"Job Schedule", filters={"job_type": ("in", job_types or [""]), "source": "Hooks"}, pluck="name"
	):
		frappe.delete_doc("Job Schedule", schedule, ignore_permissions=True, force=True)
	for job_type in job_types:
		frappe.db.set_value("Job Type", job_type, "enabled", 0)
		frappe.clear_document_cache("Job Type", job_type)


def after_migrate() -> None:
	from frappe.utils.password import get_encryption_key

	from dartwing.dartwing_core.background_jobs import schedules

	get_encryption_key()  # made now, before processes that sign methods (method_jobs) start

	ensure_roles()
	ensure_job_types()
	ensure_log_settings()
	ensure_settings_defaults()
	schedules.sync_hook_schedules()
