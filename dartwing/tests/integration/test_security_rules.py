"""No one but a System Manager makes jobs run as another user; demo job types are off outside
development; stored text reads back as written everywhere and is escaped where HTML is built
from it; the patch undoes the old escaping."""

import html

import frappe
import pytest
from frappe.utils import escape_html

from dartwing.dartwing_core.api import desk
from dartwing.dartwing_core.background_jobs import manual_retry, states, stored_text
from dartwing.patches.v0_3 import unescape_stored_text
from dartwing.tests.integration import helpers, test_cli


@pytest.fixture
def people(org):
	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	system_manager = helpers.make_user(roles=("System Manager", "Background Job User"))
	yield frappe._dict(org=org.name, member=org.user, manager=manager, system_manager=system_manager)
	frappe.db.rollback()
	frappe.db.delete("Job Schedule", {"organization": org.name})
	for user in (manager, system_manager):
		frappe.delete_doc("User", user, ignore_permissions=True, force=True)
	frappe.db.commit()


def _schedule(**values):
	doc = frappe.get_doc(
		{
			"doctype": "Job Schedule",
			"schedule_name": helpers.unique("sched"),
			"job_type": "demo_echo",
			"cron_expression": "0 3 * * *",
			"time_zone": "UTC",
			**values,
		}
	)
	doc.insert()
	return doc


def test_a_schedule_runs_as_its_creator_unless_a_system_manager_says_otherwise(people):
	frappe.set_user(people.manager)
	try:
		own = _schedule(organization=people.org)
		assert own.run_as == people.manager, "by default a schedule runs as whoever made it"
		with pytest.raises(frappe.PermissionError, match="Only a System Manager"):
			_schedule(organization=people.org, run_as="Administrator")
		with pytest.raises(frappe.PermissionError, match="Only a System Manager"):
			_schedule(organization=people.org, run_as=people.member)
	finally:
		frappe.set_user("Administrator")

	frappe.set_user(people.system_manager)
	try:
		as_admin = _schedule(organization=people.org, run_as="Administrator")
	finally:
		frappe.set_user("Administrator")
	frappe.db.commit()

	# A manager may not edit a schedule that runs as someone else (it would run their edits as
	# that user), unless they take it over.
	frappe.set_user(people.manager)
	try:
		doc = frappe.get_doc("Job Schedule", as_admin.name)
		doc.parameters = '{"edited": true}'
		with pytest.raises(frappe.PermissionError, match="Only a System Manager"):
			doc.save()
		doc = frappe.get_doc("Job Schedule", as_admin.name)
		doc.parameters = '{"edited": true}'
		doc.run_as = people.manager
		doc.save()
	finally:
		frappe.set_user("Administrator")
	assert frappe.db.get_value("Job Schedule", as_admin.name, "run_as") == people.manager


def test_only_a_system_manager_retries_someone_elses_job_with_edited_parameters(people):
	job = helpers.submit_as(people.member, "demo_fail", {"error": "permanent"}, organization=people.org)[
		"job_id"
	]
	helpers.run_burst_worker()
	helpers.wait_for_status(job, states.FAILED)

	frappe.set_user(people.manager)
	try:
		with pytest.raises(frappe.PermissionError, match="only a System Manager"):
			manual_retry.retry(job, parameters={"error": "permanent", "run": "as the member"})
		frappe.db.rollback()
		assert helpers.job(job).status == states.FAILED
		assert manual_retry.retry(job) == states.QUEUED, "an unedited retry re-runs the owner's request"
		frappe.db.commit()
	finally:
		frappe.set_user("Administrator")
	helpers.run_burst_worker()
	helpers.wait_for_status(job, states.FAILED)

	frappe.set_user(people.system_manager)
	try:
		assert manual_retry.retry(job, parameters={"fail_times": 0}) == states.QUEUED
		frappe.db.commit()
	finally:
		frappe.set_user("Administrator")
	helpers.delete_jobs({"name": job})


def test_demo_job_types_are_installed_disabled_outside_development():
	from dartwing import install

	saved = frappe.get_doc("Job Type", "demo_http").as_dict()
	conf = frappe.local.conf
	previous = conf.get("developer_mode"), conf.get("allow_tests")
	try:
		frappe.delete_doc("Job Type", "demo_http", ignore_permissions=True, force=True)
		conf.developer_mode, conf.allow_tests = 0, 0
		install.ensure_job_types()
		assert frappe.db.get_value("Job Type", "demo_http", "enabled") == 0
		assert frappe.db.get_value("Job Type", "dartwing_retention", "enabled") == 1

		frappe.delete_doc("Job Type", "demo_http", ignore_permissions=True, force=True)
		conf.allow_tests = 1
		install.ensure_job_types()
		assert frappe.db.get_value("Job Type", "demo_http", "enabled") == 1
	finally:
		conf.developer_mode, conf.allow_tests = previous
		frappe.db.rollback()
	assert frappe.db.get_value("Job Type", "demo_http", "enabled") == saved.enabled


WRITTEN = 'it\'s "quoted" & <b>bold</b> <img src=x onerror=alert(1)>'


def _made_with_stored_text(org) -> tuple[str, str]:
	"""A job that failed and one that reported progress, both with ``WRITTEN`` in their text."""
	failed = helpers.submit_as(org.user, "demo_fail", {"error": "permanent", "detail": WRITTEN})["job_id"]
	progressed = helpers.submit_as(org.user, "demo_sleep", {"seconds": 0.1, "steps": 1, "message": WRITTEN})[
		"job_id"
	]
	helpers.run_burst_worker()
	helpers.wait_for_status(failed, states.FAILED)
	helpers.wait_for_status(progressed, states.COMPLETED)
	return failed, progressed


def test_stored_text_reads_back_as_written_and_html_built_on_the_server_escapes_it(org, live):
	failed, progressed = _made_with_stored_text(org)
	error_message = helpers.job(failed).error_message
	assert error_message.endswith(f": permanent {WRITTEN}")
	assert helpers.job(progressed).progress_message.startswith(WRITTEN)
	assert error_message in frappe.db.sql_list(
		"SELECT message FROM `tabJob Execution Log` WHERE job = %s", failed
	)
	assert frappe.parse_json(helpers.job(failed).parameters)["detail"] == WRITTEN  # JSON data, as given

	client = live.session(org.user)
	status = live.call(client, "GET", "get_job_status", job_id=failed).json()["message"]
	assert status["error_message"] == error_message
	events = live.call(client, "GET", "get_job_history", job_id=failed).json()["message"]["events"]
	assert error_message in [event["message"] for event in events]
	progress = live.call(client, "GET", "get_job_status", job_id=progressed).json()["message"]
	assert progress["progress_message"].startswith(WRITTEN)
	resource = client.get(f"{live.url}/api/resource/Background Job/{failed}", timeout=30).json()["data"]
	assert resource["error_message"] == error_message

	cli = test_cli.answer(test_cli.dartwing("status", failed, "--user", org.user))
	assert cli["error_message"] == error_message

	escaped = escape_html(WRITTEN)
	timeline = " ".join(item["content"] for item in desk.job_timeline("Background Job", failed))
	assert escaped in timeline and "<img" not in timeline and "<b>bold" not in timeline
	printed = client.get(
		f"{live.url}/printview", params={"doctype": "Background Job", "name": failed}, timeout=60
	)
	assert printed.status_code == 200, printed.text[:500]
	assert escaped in printed.text and "<img src=x" not in printed.text and "<b>bold" not in printed.text


def test_the_patch_turns_text_escaped_by_the_old_writer_back_into_what_was_written(org):
	failed, progressed = _made_with_stored_text(org)
	written = {
		"error_message": helpers.job(failed).error_message,
		"progress_message": "Tom & Jerry's <b>50%</b>",
		"correlation_id": "it's <mine>",
	}
	old = {field: html.escape(html.unescape(text), quote=True) for field, text in written.items()}
	old["progress_message"] = old["progress_message"][: stored_text.DATA_LENGTH]
	frappe.db.set_value("Background Job", failed, old, update_modified=False)
	log = frappe.db.get_value("Job Execution Log", {"job": failed, "event": "Failed"}, "name")
	frappe.db.set_value("Job Execution Log", log, "message", old["error_message"], update_modified=False)
	# Written since text is kept as written: the patch must leave it alone.
	frappe.db.set_value(
		"Background Job", progressed, "progress_message", "AT&amp;T & co", update_modified=False
	)
	frappe.db.commit()

	for _run in range(2):
		unescape_stored_text.execute()
		frappe.db.rollback()
		assert frappe.db.get_value("Background Job", failed, list(written), as_dict=True) == written
		assert frappe.db.get_value("Job Execution Log", log, "message") == written["error_message"]
		assert frappe.db.get_value("Background Job", progressed, "progress_message") == "AT&amp;T & co"
