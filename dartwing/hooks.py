app_name = "dartwing"
app_title = "Dartwing"
app_publisher = "Dartwing"
app_description = (
	"Durable background jobs for Frappe: retries, dead letter, timeouts, cancellation, progress and history"
)
app_email = "dev@dartwing.dev"
app_license = "MIT"

export_python_type_annotations = True

after_install = "dartwing.install.after_install"
after_migrate = "dartwing.install.after_migrate"
# Another app's dartwing_job_schedules are set up as soon as it is installed.
after_app_install = "dartwing.install.after_app_install"
before_app_uninstall = "dartwing.install.before_app_uninstall"

# Handlers and preconditions any app can register; Job Types refer to these keys.
dartwing_job_handlers = {
	"demo_sleep": "dartwing.dartwing_core.background_jobs.demo.demo_sleep",
	"demo_echo": "dartwing.dartwing_core.background_jobs.demo.demo_echo",
	"demo_fail": "dartwing.dartwing_core.background_jobs.demo.demo_fail",
	"demo_http": "dartwing.dartwing_core.background_jobs.demo.demo_http",
	"dartwing_retention": "dartwing.dartwing_core.background_jobs.maintenance.retention_cleanup",
	"dartwing_queue_health": "dartwing.dartwing_core.background_jobs.maintenance.queue_health",
}
dartwing_job_preconditions = {
	"demo_token_check": "dartwing.dartwing_core.background_jobs.demo.demo_token_check",
}

# Recurring schedules declared by apps; migrate creates and updates them (Job Schedule, source Hooks).
dartwing_job_schedules = [
	{
		"schedule_name": "dartwing_retention_daily",
		"job_type": "dartwing_retention",
		"organization": "Dartwing System",
		"cron_expression": "17 3 * * *",
		"time_zone": "UTC",
		"missed_run_policy": "Run Once",
		"overlap_policy": "Skip If Running",
		"description": "Deletes ended jobs older than their retention, with their logs.",
	},
	{
		"schedule_name": "dartwing_queue_health",
		"job_type": "dartwing_queue_health",
		"organization": "Dartwing System",
		"cron_expression": "*/5 * * * *",
		"time_zone": "UTC",
		"missed_run_policy": "Skip",
		"overlap_policy": "Skip If Running",
		"description": "Records stuck and slow signals for the metrics.",
	},
]

_PERMISSIONS = "dartwing.dartwing_core.background_jobs.permissions"
permission_query_conditions = {
	"Background Job": f"{_PERMISSIONS}.background_job_query",
	"Job Execution Log": f"{_PERMISSIONS}.job_execution_log_query",
	"Organization": f"{_PERMISSIONS}.organization_query",
	"Organization Member": f"{_PERMISSIONS}.organization_member_query",
	"Background Job Dependency": f"{_PERMISSIONS}.job_dependency_query",
	"Job Schedule": f"{_PERMISSIONS}.job_schedule_query",
	"Job Metrics Count": f"{_PERMISSIONS}.metrics_rollup_query",
	"Job Metrics Histogram": f"{_PERMISSIONS}.metrics_rollup_query",
	"Job Metrics Period": f"{_PERMISSIONS}.metrics_rollup_query",
	"Background Job Turn": f"{_PERMISSIONS}.metrics_rollup_query",
}
has_permission = {
	"Background Job": f"{_PERMISSIONS}.has_job_permission",
	"Job Execution Log": f"{_PERMISSIONS}.has_job_permission",
	"Organization": f"{_PERMISSIONS}.has_organization_permission",
	"Organization Member": f"{_PERMISSIONS}.has_child_row_permission",
	"Background Job Dependency": f"{_PERMISSIONS}.has_child_row_permission",
}

# Frappe's generic endpoints that skip the permission hooks above, held to them for tenant
# doctypes (other doctypes keep Frappe's behaviour); see background_jobs/generic_endpoints.py.
_GENERIC = "dartwing.dartwing_core.background_jobs.generic_endpoints"
standard_queries = {
	doctype: f"{_GENERIC}.search"
	for doctype in (
		"Background Job",
		"Job Execution Log",
		"Organization",
		"Organization Member",
		"Background Job Dependency",
		"Job Schedule",
		"Job Metrics Count",
		"Job Metrics Histogram",
		"Job Metrics Period",
		"Background Job Turn",
	)
}
override_whitelisted_methods = {
	"frappe.client.get_count": f"{_GENERIC}.get_count",
	"frappe.client.validate_link": f"{_GENERIC}.validate_link",
	"frappe.desk.listview.get_group_by_count": f"{_GENERIC}.get_group_by_count",
	"frappe.desk.doctype.tag.tag.get_tagged_docs": f"{_GENERIC}.get_tagged_docs",
	"frappe.desk.like.toggle_like": f"{_GENERIC}.toggle_like",
}

# The upkeep runner (bench dartwing upkeep) moves due work every half second; this per-minute
# event does the same, later, only when no runner has passed lately.
scheduler_events = {
	"cron": {
		"* * * * *": ["dartwing.dartwing_core.background_jobs.upkeep.scheduler_fallback"],
	},
}

after_request = ["dartwing.dartwing_core.background_jobs.rate_limit.add_retry_after_header"]

default_log_clearing_doctypes = {"Job Execution Log": 30}

# Desk: helpers for the Background Job list and form, and the jobs section on reference documents.
app_include_js = "dartwing.bundle.js"
boot_session = "dartwing.dartwing_core.api.desk.boot_session"
additional_timeline_content = {"Background Job": ["dartwing.dartwing_core.api.desk.job_timeline"]}
