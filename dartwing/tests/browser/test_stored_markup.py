"""Stored markup never runs: a job manager opens every Desk view of jobs whose parameters, result,
progress message, error message and log messages carry script payloads, written through the
engine's own paths (submit, a worker running the handler, its progress and its error).

Each payload, if it ran, would record itself in ``window.__dartwing_xss``; a dialog would be seen
by Playwright. Every view must also show the payload as text, so the test knows it was there.
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
PAYLOAD = " ".join(PAYLOADS)
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
		text = page.inner_text("body")
		if key == "error":
			assert VISIBLE in text, "the form does not show the error message as text"
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
	page.wait_for_selector(".dt-scrollable", timeout=15_000)
	_assert_no_script_ran(page, dialogs, "job report view")

	_open(
		page,
		base_url,
		f"/app/job-execution-log/view/report?organization={scenario.organization}",
		"() => window.cur_list && cur_list.data && cur_list.data.length",
	)
	_assert_no_script_ran(page, dialogs, "log report view")

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
	page.wait_for_function(
		"() => frappe.query_report.data && frappe.query_report.data.length", timeout=30_000
	)
	assert VISIBLE in page.inner_text("body"), "the report does not show the last error as text"
	_assert_no_script_ran(page, dialogs, "Job Type Health")

	# The Retry dialog shows the parameters of the failed job.
	_open(page, base_url, f"/app/background-job/{hostile_jobs['error']}", form_ready, hostile_jobs["error"])
	page.click(".btn-dartwing-retry")
	page.wait_for_selector(".modal.show", timeout=10_000)
	_assert_no_script_ran(page, dialogs, "retry dialog")
	page.keyboard.press("Escape")


def test_the_payloads_are_stored_as_text(hostile_jobs):
	frappe.db.rollback()
	error = frappe.db.get_value("Background Job", hostile_jobs["error"], "error_message")
	assert "<img" not in error and "&lt;img src=x onerror=" in error
	progress_logs = frappe.db.sql_list(
		"SELECT message FROM `tabJob Execution Log` WHERE job = %s AND message IS NOT NULL",
		hostile_jobs["error"],
	)
	assert all("<img" not in message for message in progress_logs)
	# JSON values are data, not text: kept exactly as submitted.
	assert json.loads(frappe.db.get_value("Background Job", hostile_jobs["echo"], "parameters")) == {
		"html": PAYLOAD
	}
	wait_for(
		lambda: frappe.db.get_value("Background Job", hostile_jobs["echo"], "result"), message="a result"
	)
