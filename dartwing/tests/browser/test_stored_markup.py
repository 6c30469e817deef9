"""Stored markup never runs: a job manager opens every Desk view of jobs whose parameters, result,
progress message, error message and log messages carry script payloads, written through the
engine's own paths (submit, a worker running the handler, its progress and its error).

Stored text is kept as written (``stored_text``), so Desk must escape it wherever it renders it.
Each payload, if it ran, would record itself in ``window.__dartwing_xss``; a dialog would be seen
by Playwright. Every view must also show the text as it was written, so the test knows it was
there and that it reads right (``'``, ``"``, ``&`` and ``<b>`` included).
"""

import json

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import states
from dartwing.tests.browser.scenario import wait_for, wait_for_desk, wait_for_status, wait_until_idle

MARK = "window.__dartwing_xss=(window.__dartwing_xss||[]).concat"
PAYLOADS = (
	f"<img src=x onerror=\"{MARK}('img')\">",
	f"<script>{MARK}('script')</script>",
	f"<svg onload=\"{MARK}('svg')\"></svg>",
	f"\"><img src=y onerror={MARK}('attr')>",
)
WRITTEN = 'Tom & Jerry\'s "<b>bold</b>"'
PAYLOAD = " ".join((WRITTEN, *PAYLOADS))
VISIBLE = "<img src=x onerror="


@pytest.fixture(scope="module")
def hostile_jobs(scenario):
	"""Three jobs of the manager, referencing the scenario's organization, carrying the payloads."""
	wait_until_idle()
	reference = {"reference_doctype": "Organization", "reference_name": scenario.organization}
	made = {
		"echo": scenario.submit_as(scenario.manager, "demo_echo", {"html": PAYLOAD}, **reference),
		"progress": scenario.submit_as(
			scenario.manager, "demo_sleep", {"seconds": 0.2, "steps": 1, "message": PAYLOAD}, **reference
		),
		"error": scenario.submit_as(
			scenario.manager, scenario.fail_type, {"error": "permanent", "detail": PAYLOAD}, **reference
		),
	}
	wait_for_status(made["echo"], states.COMPLETED)
	wait_for_status(made["progress"], states.COMPLETED)
	wait_for_status(made["error"], states.FAILED)
	return made


def _watch(page) -> list[str]:
	dialogs = []
	page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
	return dialogs


def _assert_no_script_ran(page, dialogs, view: str) -> None:
	page.wait_for_timeout(800)  # let late images fail and late renders happen
	ran = page.evaluate("() => window.__dartwing_xss || []")
	assert not ran and not dialogs, f"{view}: stored markup ran ({ran}, dialogs {dialogs})"


def _assert_shown_as_written(page, view: str, selector: str = "body") -> None:
	text = page.inner_text(selector)
	assert WRITTEN in text and VISIBLE in text, f"{view}: the stored text is not shown as written"


def _open(page, base_url, path, ready_js: str, arg=None) -> None:
	page.goto(f"{base_url}{path}", wait_until="domcontentloaded")
	wait_for_desk(page)
	page.wait_for_function(ready_js, arg=arg, timeout=30_000)


def test_no_view_runs_stored_markup(manager_page, base_url, scenario, hostile_jobs):
	page = manager_page
	dialogs = _watch(page)
	form_ready = "(name) => window.cur_frm && cur_frm.doc && cur_frm.doc.name === name && !cur_frm.is_dirty()"

	for key, name in hostile_jobs.items():
		_open(page, base_url, f"/app/background-job/{name}", form_ready, name)
		page.wait_for_selector(".timeline-item", timeout=15_000)
		if key in ("error", "progress"):
			_assert_shown_as_written(page, f"job form ({key})")
		_assert_no_script_ran(page, dialogs, f"job form ({key})")

	# The list and the report view, with the text columns shown.
	page.evaluate(
		"""() => frappe.model.user_settings.save("Background Job", "Report", {
			fields: ["name", "status", "progress_message", "error_message", "parameters", "result"]
				.map(f => [f, "Background Job"]),
		})"""
	)
	_open(
		page,
		base_url,
		"/app/background-job",
		"() => window.cur_list && cur_list.data && cur_list.data.length",
	)
	_assert_no_script_ran(page, dialogs, "job list")
	_open(
		page,
		base_url,
		f"/app/background-job/view/report?organization={scenario.organization}",
		"() => window.cur_list && cur_list.data && cur_list.data.length >= 3",
	)
	page.wait_for_selector(".dt-scrollable .dt-row", timeout=15_000)
	_assert_shown_as_written(page, "job report view", ".dt-scrollable")
	_assert_no_script_ran(page, dialogs, "job report view")

	_open(
		page,
		base_url,
		f"/app/job-execution-log/view/report?organization={scenario.organization}",
		"() => window.cur_list && cur_list.data && cur_list.data.length",
	)
	page.wait_for_selector(".dt-scrollable .dt-row", timeout=15_000)
	_assert_no_script_ran(page, dialogs, "log report view")

	# The form of the log row that holds the error.
	log = frappe.db.get_value("Job Execution Log", {"job": hostile_jobs["error"], "event": "Failed"}, "name")
	_open(
		page,
		base_url,
		f"/app/job-execution-log/{log}",
		"(name) => window.cur_frm && cur_frm.doc && String(cur_frm.doc.name) === name",
		str(log),
	)
	_assert_shown_as_written(page, "log form")
	_assert_no_script_ran(page, dialogs, "log form")

	_open(page, base_url, "/app/background-jobs", "() => document.querySelector('.number-widget-box')")
	_assert_no_script_ran(page, dialogs, "workspace")

	# The organization's form lists the jobs (with running progress) that refer to it.
	_open(
		page,
		base_url,
		f"/app/organization/{scenario.organization}",
		"(name) => window.cur_frm && cur_frm.doc && cur_frm.doc.name === name",
		scenario.organization,
	)
	page.wait_for_selector(".dartwing-reference-jobs", timeout=15_000)
	_assert_no_script_ran(page, dialogs, "reference document")

	_open(
		page,
		base_url,
		"/app/query-report/Job Type Health",
		"() => window.frappe.query_report && frappe.query_report.data",
	)
	# The report says "Loading..." until its rows are drawn: wait for the row of the failing type.
	page.wait_for_function(
		"""(visible) => [...document.querySelectorAll(".dt-scrollable .dt-cell__content")]
			.some((cell) => cell.textContent.includes(visible))""",
		arg=VISIBLE,
		timeout=30_000,
	)
	_assert_shown_as_written(page, "Job Type Health", ".dt-scrollable")
	_assert_no_script_ran(page, dialogs, "Job Type Health")

	# The Retry dialog shows the parameters of the failed job.
	_open(page, base_url, f"/app/background-job/{hostile_jobs['error']}", form_ready, hostile_jobs["error"])
	page.click(".btn-dartwing-retry")
	page.wait_for_selector(".modal.show", timeout=10_000)
	_assert_no_script_ran(page, dialogs, "retry dialog")
	page.keyboard.press("Escape")

	# The print view of the failed job.
	page.goto(
		f"{base_url}/printview?doctype=Background%20Job&name={hostile_jobs['error']}",
		wait_until="load",
	)
	_assert_shown_as_written(page, "print view")
	_assert_no_script_ran(page, dialogs, "print view")


def test_live_progress_shows_stored_text_as_written(manager_page, base_url, scenario):
	"""Progress messages pushed over Socket.IO while the job runs are rendered as text too."""
	page = manager_page
	dialogs = _watch(page)
	wait_until_idle()
	name = scenario.submit_as(scenario.manager, "demo_sleep", {"seconds": 8, "steps": 8, "message": PAYLOAD})
	_open(
		page,
		base_url,
		f"/app/background-job/{name}",
		"(name) => window.cur_frm && cur_frm.doc && cur_frm.doc.name === name",
		name,
	)
	before = (
		page.inner_text(".dartwing-job-progress") if page.query_selector(".dartwing-job-progress") else ""
	)
	# A later step's message arrives by realtime: its label changes while the page stays open.
	page.wait_for_function(
		"""([before, visible]) => {
			const shown = document.querySelector(".dartwing-job-progress .dartwing-progress-message");
			return shown && shown.textContent.includes(visible) && shown.textContent !== before;
		}""",
		arg=[before, VISIBLE],
		timeout=30_000,
	)
	_assert_shown_as_written(page, "live progress", ".dartwing-job-progress")
	_assert_no_script_ran(page, dialogs, "live progress")
	wait_for_status(name, states.COMPLETED, timeout=60)


def test_the_payloads_are_stored_as_written(hostile_jobs):
	frappe.db.rollback()
	error = frappe.db.get_value("Background Job", hostile_jobs["error"], "error_message")
	assert error.endswith(PAYLOAD)
	progress_logs = frappe.db.sql_list(
		"SELECT message FROM `tabJob Execution Log` WHERE job = %s AND event = 'Failed'",
		hostile_jobs["error"],
	)
	assert progress_logs and all(PAYLOAD in message for message in progress_logs)
	# JSON values are data: kept exactly as submitted.
	assert json.loads(frappe.db.get_value("Background Job", hostile_jobs["echo"], "parameters")) == {
		"html": PAYLOAD
	}
	wait_for(
		lambda: frappe.db.get_value("Background Job", hostile_jobs["echo"], "result"), message="a result"
	)
