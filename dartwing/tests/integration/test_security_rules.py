"""No one but a System Manager makes jobs run as another user; demo job types are off outside
development; stored text is escaped on every path the engine writes it."""

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import manual_retry, states
from dartwing.tests.integration import helpers


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


def test_text_from_handlers_and_errors_is_stored_escaped(org):
	payload = "<img src=x onerror=alert(1)>"
	failed = helpers.submit_as(org.user, "demo_fail", {"error": "permanent", "detail": payload})["job_id"]
	progressed = helpers.submit_as(org.user, "demo_sleep", {"seconds": 0.1, "steps": 1, "message": payload})[
		"job_id"
	]
	helpers.run_burst_worker()
	helpers.wait_for_status(failed, states.FAILED)
	helpers.wait_for_status(progressed, states.COMPLETED)

	error = helpers.job(failed).error_message
	assert payload not in error and "&lt;img src=x onerror=alert(1)&gt;" in error
	progress = helpers.job(progressed).progress_message
	assert payload not in progress and "&lt;img" in progress
	messages = frappe.db.sql_list("SELECT message FROM `tabJob Execution Log` WHERE job = %s", failed)
	assert not any(payload in (message or "") for message in messages)
	assert any("&lt;img" in (message or "") for message in messages)
	# Parameters are data: kept as given.
	assert payload in helpers.job(failed).parameters
