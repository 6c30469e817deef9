"""The Desk in a real browser: submit from the list, live progress, cancel, the workspace cards,
the list, the jobs of a document, the buttons each user gets, and the Job Type Health report.

Tests run in file order and share one session per user (see ``conftest``); the fixtures wait
for the site's workers to be idle before they need one, as a bench usually has a single worker.
"""

import json
import re
import time
from itertools import pairwise

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import states
from dartwing.tests.browser.scenario import (
	card_counts,
	job,
	wait_for,
	wait_for_desk,
	wait_for_socket,
	wait_for_status,
	wait_until_idle,
)

JOB_URL = re.compile(r".*/app/background-job/(JOB-[\w-]+)$")
CARD_LABELS = ("Queued", "Running", "Retrying", "Failed (last 24 h)", "Dead Letter")
PROGRESS_JS = """() => {
	const bar = document.querySelector('.dartwing-job-progress .dartwing-progress');
	return {
		percent: bar ? parseFloat(bar.dataset.percent) : null,
		status: window.cur_frm && cur_frm.doc ? cur_frm.doc.status : null,
	};
}"""


def open_desk(page, base_url: str, path: str) -> None:
	page.goto(f"{base_url}{path}")
	wait_for_desk(page)


def open_job(page, base_url: str, name: str) -> None:
	open_desk(page, base_url, f"/app/background-job/{name}")
	page.wait_for_function(
		"(name) => window.cur_frm && cur_frm.doc && cur_frm.doc.name === name", arg=name, timeout=20_000
	)


def fill_link(dialog, fieldname: str, value: str) -> None:
	"""Type into a Link field and pick the value from its dropdown, as a person would."""
	control = dialog.locator(f'.frappe-control[data-fieldname="{fieldname}"]')
	control.locator("input").click()
	control.locator("input").fill(value)
	control.locator(f'[role="listbox"] [role="option"]:has-text("{value}")').first.click(timeout=15_000)


def shot(page, screenshots, name: str) -> None:
	page.screenshot(path=str(screenshots / name), full_page=False)


# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_jobs(scenario):
	wait_until_idle()
	return scenario.make_finished_jobs()


@pytest.fixture(scope="module")
def long_job(scenario, finished_jobs):
	"""A demo_sleep job of the plain member, running for two minutes, referencing the organization."""
	wait_until_idle()
	name = scenario.submit_as(
		scenario.member,
		"demo_sleep",
		{"seconds": 120, "steps": 120, "token": frappe.generate_hash(length=8)},
		reference_doctype="Organization",
		reference_name=scenario.organization,
	)
	wait_for(
		lambda: job(name).status == states.RUNNING and job(name).progress_percent > 0,
		timeout=60,
		message=f"{name} to run",
	)
	return name


# ---------------------------------------------------------------------------------------------


def test_submit_demo_sleep_from_desk_and_watch_progress(manager_page, base_url, scenario, screenshots):
	page = manager_page
	wait_until_idle()
	open_desk(page, base_url, "/app/background-job")
	page.locator(".btn-dartwing-submit-job").click()
	dialog = page.locator(".modal.show").filter(has_text="Submit Job")
	dialog.wait_for()
	fill_link(dialog, "job_type", "demo_sleep")
	fill_link(dialog, "organization", scenario.organization)
	dialog.locator('.frappe-control[data-fieldname="parameters"] .ace_text-input').focus()
	page.keyboard.press("Control+A")
	page.keyboard.insert_text(json.dumps({"seconds": 8, "steps": 8, "token": frappe.generate_hash(length=8)}))
	dialog.locator(".btn-modal-primary").click()

	page.wait_for_url(JOB_URL, timeout=20_000)
	name = JOB_URL.match(page.url).group(1)
	page.wait_for_function(
		"(name) => window.cur_frm && cur_frm.doc && cur_frm.doc.name === name", arg=name, timeout=20_000
	)
	page.evaluate("window.__dartwing_not_reloaded = true")
	wait_for_socket(page)

	seen, screenshot_taken = [], False
	deadline = time.monotonic() + 60
	while time.monotonic() < deadline:
		state = page.evaluate(PROGRESS_JS)
		percent = state["percent"]
		if percent is not None and (not seen or seen[-1] != percent):
			seen.append(percent)
		if not screenshot_taken and percent is not None and 30 <= percent <= 80:
			shot(page, screenshots, "form-progress.png")
			screenshot_taken = True
		if state["status"] == states.COMPLETED and percent == 100:
			break
		page.wait_for_timeout(100)

	row = job(name)
	assert row.job_type == "demo_sleep" and row.owner == scenario.manager
	assert row.organization == scenario.organization
	assert row.status == states.COMPLETED, f"{name} is {row.status}; progress seen: {seen}"
	assert page.evaluate("window.__dartwing_not_reloaded === true"), "the page was reloaded"
	steps = [percent for percent in seen if 0 < percent < 100]
	increases = [b for a, b in pairwise(seen) if b > a]
	assert len(steps) >= 2 and len(increases) >= 2, f"progress did not move live: {seen}"
	assert seen == sorted(seen), f"progress went backwards: {seen}"
	assert seen[-1] == 100
	assert screenshot_taken


def test_list_view_shows_status_colours_and_live_progress(
	manager_page, base_url, scenario, finished_jobs, long_job, screenshots
):
	page = manager_page
	open_desk(page, base_url, f"/app/background-job?organization={scenario.organization}")
	expected = {
		long_job: ("Running", "orange"),
		finished_jobs[states.FAILED]: ("Failed", "red"),
		finished_jobs[states.RETRYING]: ("Retrying", "yellow"),
		finished_jobs[states.DEAD_LETTER]: ("Dead Letter", "red"),
	}
	for name, (label, colour) in expected.items():
		row = page.locator(".list-row-container").filter(has=page.locator(f'a[data-name="{name}"]'))
		row.wait_for(timeout=20_000)
		pill = row.locator(".indicator-pill").first
		assert pill.inner_text().strip() == label
		assert colour in (pill.get_attribute("class") or "").split()

	# The running job is the member's: its events reach the manager's list through the job's room.
	bar = page.locator(f'.dartwing-list-progress[data-job="{long_job}"] .dartwing-progress')
	bar.wait_for(timeout=10_000)
	wait_for_socket(page)
	first = float(bar.get_attribute("data-percent"))
	page.wait_for_function(
		"([selector, first]) => parseFloat(document.querySelector(selector).dataset.percent) > first",
		arg=[f'.dartwing-list-progress[data-job="{long_job}"] .dartwing-progress', first],
		timeout=15_000,
	)
	shot(page, screenshots, "list.png")


def test_reference_document_lists_its_jobs(manager_page, base_url, scenario, long_job, screenshots):
	page = manager_page
	open_desk(page, base_url, f"/app/organization/{scenario.organization}")
	row = page.locator(f'.dartwing-reference-jobs tr[data-job="{long_job}"]')
	row.wait_for(timeout=20_000)
	assert "Running" in row.inner_text()
	assert row.locator(f'a[href*="{long_job}"]').count() == 1
	shot(page, screenshots, "reference-document.png")


def test_workspace_number_cards_match_the_database(
	manager_page, base_url, finished_jobs, long_job, screenshots
):
	page = manager_page
	for _attempt in range(3):
		before = card_counts()
		open_desk(page, base_url, "/app/background-jobs")
		shown = {}
		for label in CARD_LABELS:
			card = page.locator(".number-widget-box").filter(
				has=page.locator(f'.widget-title span[title="{label}"]')
			)
			number = card.locator(".widget-content .number")
			number.wait_for(timeout=20_000)
			shown[label] = int(number.inner_text().strip().replace(",", ""))
		after = card_counts()
		if before == after:
			break
	assert shown == after, f"cards {shown} != database {after}"
	assert after["Running"] >= 1 and after["Retrying"] >= 1
	assert after["Failed (last 24 h)"] >= 1 and after["Dead Letter"] >= 1
	page.locator(".widget.dashboard-widget-box .chart-container svg").first.wait_for(timeout=20_000)
	page.wait_for_timeout(1500)  # the charts' bars grow in
	shot(page, screenshots, "workspace.png")


def test_workspace_banner_shows_the_upkeep_and_the_scheduler(manager_page, base_url, screenshots):
	"""The banner says what get_upkeep_status says: the upkeep runner's state and the scheduler's."""
	from dartwing.dartwing_core.background_jobs import upkeep

	page = manager_page
	open_desk(page, base_url, "/app/background-jobs")
	banner = page.locator(".dartwing-upkeep-banner")
	banner.wait_for(timeout=20_000)
	frappe.db.rollback()
	state = upkeep.liveness()
	assert banner.get_attribute("data-upkeep-alive") == str(int(state["upkeep_alive"]))
	assert banner.get_attribute("data-scheduler-active") == str(int(state["scheduler_active"]))
	shown = banner.inner_text()
	assert "Upkeep: last pass" in shown
	for warning in state["warnings"]:
		assert warning[:40] in shown, f"{warning!r} not in the banner {shown!r}"
	page.locator(".number-widget-box .widget-content .number").first.wait_for(timeout=20_000)
	shot(page, screenshots, "workspace-upkeep-banner.png")


def test_buttons_follow_what_the_server_allows(manager_page, member_page, base_url, finished_jobs, long_job):
	failed = finished_jobs[states.FAILED]

	def buttons(page, name):
		open_job(page, base_url, name)
		page.wait_for_timeout(500)
		return {
			"cancel": page.locator(".btn-dartwing-cancel:visible").count(),
			"retry": page.locator(".btn-dartwing-retry:visible").count(),
		}

	# A manager may retry a failed job; nobody may cancel a finished one.
	assert buttons(manager_page, failed) == {"cancel": 0, "retry": 1}
	# A plain member sees the manager's failed job but may do nothing with it.
	assert buttons(member_page, failed) == {"cancel": 0, "retry": 0}
	# The member may cancel their own running job, not retry it; so may the manager.
	assert buttons(member_page, long_job) == {"cancel": 1, "retry": 0}
	assert buttons(manager_page, long_job) == {"cancel": 1, "retry": 0}


def test_cancel_a_running_job_from_its_form(member_page, base_url, scenario, long_job, screenshots):
	page = member_page
	open_job(page, base_url, long_job)
	wait_for_socket(page)
	page.evaluate("window.__dartwing_not_reloaded = true")
	page.locator(".btn-dartwing-cancel:visible").click()
	page.locator(".modal.show .btn-modal-primary").filter(has_text="Yes").click()

	# The form follows the job to Canceled by itself (job_status_changed), without a page reload.
	page.wait_for_function(
		"() => cur_frm.doc.status === 'Canceled'"
		" && document.querySelector('.page-head .indicator-pill').innerText.includes('Canceled')",
		timeout=20_000,
	)
	assert page.evaluate("window.__dartwing_not_reloaded === true")
	row = wait_for_status(long_job, states.CANCELED, timeout=10)
	assert row.canceled_by == scenario.member
	page.locator('.dartwing-job-event[data-event="Canceled"]').first.wait_for(timeout=10_000)
	assert page.locator(".btn-dartwing-cancel:visible").count() == 0
	shot(page, screenshots, "form-canceled.png")
	page.evaluate("() => document.querySelectorAll('#alert-container .alert').forEach((a) => a.remove())")
	timeline = page.locator(".new-timeline")
	timeline.scroll_into_view_if_needed()
	timeline.screenshot(path=str(screenshots / "form-timeline.png"))


def test_retry_a_dead_letter_job_from_its_form(manager_page, base_url, scenario, finished_jobs):
	page = manager_page
	name = finished_jobs[states.DEAD_LETTER]
	open_job(page, base_url, name)
	page.locator(".btn-dartwing-retry:visible").click()
	dialog = page.locator(".modal.show").filter(has_text=f"Retry {name}")
	dialog.locator(".btn-modal-primary").click()
	wait_for(
		lambda: frappe.db.sql(
			"""SELECT 1 FROM `tabJob Execution Log`
			WHERE job = %s AND event = 'Requeued' AND actor = %s""",
			(name, scenario.manager),
		),
		timeout=15,
		message=f"{name} to be requeued by the manager",
	)
	# It fails the same way again (transient error, no retries left) and the form follows, its
	# timeline now showing both runs.
	wait_for_status(name, states.DEAD_LETTER, timeout=60)
	page.wait_for_function(
		"() => cur_frm.doc.status === 'Dead Letter'"
		" && document.querySelectorAll('.dartwing-job-event[data-event=\"Started\"]').length >= 2",
		timeout=20_000,
	)


def test_job_type_health_report(manager_page, base_url, scenario, finished_jobs, screenshots):
	page = manager_page
	open_desk(page, base_url, "/app/query-report/Job Type Health")
	cell = page.locator(".dt-cell__content", has_text=scenario.fail_type).first
	cell.wait_for(timeout=20_000)
	row_index = cell.locator("xpath=ancestor::*[contains(@class,'dt-cell')][1]").get_attribute(
		"data-row-index"
	)
	row = page.locator(f'.dt-row[data-row-index="{row_index}"]')
	columns = page.evaluate("() => frappe.query_report.columns.map(c => c.fieldname)")
	values = {
		fieldname: row.locator(f'.dt-cell[data-col-index="{index + 1}"]').inner_text().strip()
		for index, fieldname in enumerate(columns)
	}
	frappe.db.rollback()
	jobs = frappe.db.count("Background Job", {"job_type": scenario.fail_type})
	assert int(values["jobs"]) == jobs
	assert int(values["failed"]) == jobs
	assert values["failure_rate"].startswith("100")
	assert values["last_failed_job"] == finished_jobs[states.FAILED]
	assert "PermanentError" in values["last_error"]
	page.wait_for_timeout(1500)  # the chart's bars grow in
	shot(page, screenshots, "report.png")
