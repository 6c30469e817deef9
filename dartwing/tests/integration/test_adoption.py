"""Adopting Dartwing as a new user does: an app's ``frappe.enqueue`` call switched to
``dartwing.enqueue`` (one line), the ``@dartwing.job`` decorator, the function's Job Type edited
like in Desk, the organization left out, and a ``scheduler_events`` entry moved to Dartwing.

The app is a throwaway Frappe app (``throwaway_app``: in the bench's ``apps`` folder, on the bench
env's path, installed with ``bench install-app``); its calls run through ``bench execute`` and its
jobs on real workers."""

import difflib
import importlib
import json
import os
import re
import shutil
import sys
import textwrap

import frappe
import pytest
from frappe.utils.background_jobs import get_queue

import dartwing
from dartwing.dartwing_core.background_jobs import manual_retry, method_jobs, schedules, states, tenancy
from dartwing.dartwing_core.background_jobs.cancellation import cancel
from dartwing.tests.integration import helpers
from dartwing.tests.integration.test_api_http import error_text
from dartwing.tests.integration.throwaway_app import ThrowawayApp, bench, execute

APP_HOOKS = """
dartwing_job_schedules = [
	{{"schedule_name": "{app}_nightly_digest", "method": "{app}.tasks.nightly_digest",
	 "cron_expression": "0 2 * * *", "retries": 1}},
]
"""

APP_TASKS = """
import os

import frappe

import dartwing

CALLS = os.path.join(os.path.dirname(__file__), "calls")


def _count_call(name):
	path = f"{{CALLS}}-{{name}}"
	calls = int(open(path).read()) + 1 if os.path.exists(path) else 1
	with open(path, "w") as counter:
		counter.write(str(calls))
	return calls


def sync(account, pages=2):
	\"\"\"Fails once with a connection error, then syncs its pages with progress.\"\"\"
	if _count_call(f"sync-{{account}}") == 1:
		raise ConnectionError("the remote end hung up")
	for page in range(pages):
		dartwing.progress((page + 1) * 100 / pages, f"page {{page + 1}} of {{pages}}")
	return {{"account": account, "pages": pages, "user": frappe.session.user}}


def start_sync(account):
	return frappe.enqueue("{app}.tasks.sync", queue="long", timeout=600, account=account)


def crawl(account):
	\"\"\"Runs until it is canceled, reporting progress.\"\"\"
	step = 0
	while True:
		step += 1
		dartwing.progress(min(step, 99), f"step {{step}}")
		frappe.db.sql("SELECT SLEEP(0.05)")


@dartwing.job(retries=2, timeout=60, backoff="0")
def decorated_sync(account):
	if _count_call(f"decorated-{{account}}") == 1:
		raise ConnectionError("the remote end hung up")
	dartwing.progress(50, "half way")
	dartwing.raise_if_canceled()
	return {{"account": account}}


def start_decorated(account):
	return decorated_sync.enqueue(account=account, priority="High")


def flexible(account, **options):
	\"\"\"Takes any keyword, as Python allows.\"\"\"
	return {{"account": account, **options}}


def nightly_digest():
	\"\"\"An existing scheduled method: no arguments.\"\"\"
	_count_call("digest")
	dartwing.progress(100, "digest sent")
"""


@pytest.fixture(scope="module")
def app():
	"""A throwaway Frappe app (``throwaway_app``) with the tasks above, installed on the test site."""
	throwaway = ThrowawayApp(f"dw_adopt_{frappe.generate_hash(length=6)}")
	organization = helpers.make_org()
	try:
		throwaway.write("hooks.py", APP_HOOKS.format(app=throwaway.name))
		throwaway.write("tasks.py", textwrap.dedent(APP_TASKS.format(app=throwaway.name)))
		set_default_organization(organization)
		throwaway.install()
		yield frappe._dict(name=throwaway.name, folder=throwaway.package, organization=organization)
	finally:
		throwaway.remove()
		set_default_organization(None)
		helpers.cleanup_org(organization)


def set_default_organization(organization: str | None) -> None:
	settings = frappe.get_single("Background Job Settings")
	settings.default_organization = organization
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def tasks_module(app):
	return importlib.import_module(f"{app.name}.tasks")


def switch_to_dartwing(app) -> None:
	"""The one-line change a user makes, checked to be one line."""
	path = os.path.join(app.folder, "tasks.py")
	with open(path) as file:
		before = file.read()
	after = before.replace("return frappe.enqueue(", "return dartwing.enqueue(")
	changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]
	assert len(changed) == 2, changed
	with open(path, "w") as file:
		file.write(after)


def calls(app, name: str) -> int:
	path = os.path.join(app.folder, f"calls-{name}")
	return int(open(path).read()) if os.path.exists(path) else 0


def test_a_frappe_enqueue_call_becomes_durable_with_one_changed_line(app):
	switch_to_dartwing(app)
	answer = execute(f"{app.name}.tasks.start_sync", account="acme")
	job_type = frappe.get_doc("Job Type", f"{app.name}.tasks.sync")
	assert (job_type.method, job_type.queue, job_type.timeout_seconds) == (job_type.name, "long", 600)
	assert job_type.max_retries == 3  # Dartwing's default for a function
	# Edited like in Desk, without code: no wait between attempts.
	job_type.backoff_strategy, job_type.backoff_schedule = "Schedule", "0"
	job_type.save()
	frappe.db.commit()

	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(answer["job_id"], states.COMPLETED)
	assert job.organization == app.organization and job.owner == "Administrator"
	assert frappe.parse_json(job.result) == {"account": "acme", "pages": 2, "user": "Administrator"}
	assert frappe.parse_json(job.parameters) == {"account": "acme"}
	assert job.attempt == 2 and job.progress_message == "page 2 of 2"
	assert helpers.events(job.name) == [
		"Submitted", "Queued", "Started", "Retry Scheduled", "Requeued", "Started", "Completed",
	]  # fmt: skip
	retry = frappe.db.get_value("Job Execution Log", {"job": job.name, "event": "Retry Scheduled"}, "message")
	assert "the remote end hung up" in retry
	assert calls(app, "sync-acme") == 2


def test_a_running_function_sees_cancel_through_dartwing_progress(app):
	job_id = dartwing.enqueue(f"{app.name}.tasks.crawl", account="acme")["job_id"]
	frappe.db.commit()
	with helpers.Worker():
		helpers.wait_for(lambda: (helpers.job(job_id).progress_percent or 0) >= 3, message="progress")
		cancel(job_id)
		frappe.db.commit()
		job = helpers.wait_for_status(job_id, states.CANCELED, timeout=10)
	assert job.canceled_by == "Administrator" and job.progress_message.startswith("step ")
	assert helpers.events(job_id)[-1] == "Canceled"


def test_the_decorator_form_works_the_same(app):
	decorated_sync = tasks_module(app).decorated_sync
	with pytest.raises(ConnectionError):
		decorated_sync("direct")
	assert decorated_sync("direct") == {"account": "direct"}  # still a plain function
	answer = execute(f"{app.name}.tasks.start_decorated", account="acme")
	job_type = frappe.get_doc("Job Type", f"{app.name}.tasks.decorated_sync")
	assert (job_type.max_retries, job_type.timeout_seconds, job_type.backoff_schedule) == (2, 60, "0")
	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(answer["job_id"], states.COMPLETED)
	assert (job.attempt, job.priority, job.progress_message) == (2, "High", "half way")
	assert "Retry Scheduled" in helpers.events(job.name)


def test_desk_edits_stand_until_the_code_declares_something_else(app):
	path = f"{app.name}.tasks.sync"
	dartwing.enqueue(path, queue="long", timeout=600, account="a")
	job_type = frappe.get_doc("Job Type", path)
	job_type.update({"timeout_seconds": 900, "queue": "default"})
	job_type.save()
	second = dartwing.enqueue(path, queue="long", timeout=600, account="b")
	assert frappe.db.get_value("Background Job", second["job_id"], ["queue", "timeout_seconds"]) == (
		"default",
		900,
	)
	third = dartwing.enqueue(tasks_module(app).sync, queue="short", timeout=600, account="c")
	assert frappe.db.get_value("Background Job", third["job_id"], ["queue", "timeout_seconds"]) == (
		"short",
		600,
	)
	frappe.db.rollback()


def test_job_id_with_deduplicate_returns_the_active_job(app):
	sync = tasks_module(app).sync
	first = dartwing.enqueue(sync, job_id="sync-acme", deduplicate=True, account="acme")
	again = dartwing.enqueue(sync, job_id="sync-acme", deduplicate=True, account="other")
	assert again == {**first, "deduplicated": True}
	assert frappe.db.get_value("Background Job", first["job_id"], "correlation_id") == "sync-acme"
	with pytest.raises(frappe.ValidationError, match="job_id"):
		dartwing.enqueue(sync, deduplicate=True, account="acme")
	frappe.db.rollback()


def test_now_runs_the_function_here_as_frappe_enqueue_does(app):
	before = calls(app, "digest")
	assert dartwing.enqueue(tasks_module(app).nightly_digest, now=True) is None
	assert calls(app, "digest") == before + 1
	assert not frappe.db.exists(
		"Background Job", {"job_type": f"{app.name}.tasks.nightly_digest", "status": "Completed"}
	)


def test_only_module_level_functions_with_json_arguments(app):
	sync = tasks_module(app).sync
	with pytest.raises(frappe.ValidationError, match="module-level"):
		dartwing.enqueue(lambda: None)
	with pytest.raises(frappe.ValidationError, match="cannot be imported"):
		dartwing.enqueue(f"{app.name}.tasks.nope")
	with pytest.raises(frappe.ValidationError, match="cannot be imported"):
		dartwing.enqueue("not_an_app.tasks.run")
	with pytest.raises(frappe.ValidationError, match="JSON"):
		dartwing.enqueue(sync, account=object())
	with pytest.raises(frappe.ValidationError, match="on_success"):
		dartwing.enqueue(sync, on_success=print, account="x")
	frappe.db.rollback()


def _stored_counts() -> tuple[int, int, int, int]:
	"""Jobs, log rows and Job Types on the site, and wake-up tokens waiting in RQ, once committed."""
	frappe.db.commit()
	tokens = sum(len(get_queue(queue).job_ids) for queue in ("short", "default", "long"))
	return (
		frappe.db.count("Background Job"),
		frappe.db.count("Job Execution Log"),
		frappe.db.count("Job Type"),
		tokens,
	)


def test_a_call_that_cannot_run_is_refused_at_once_and_leaves_nothing(app):
	tasks = tasks_module(app)
	before = _stored_counts()
	refused = [
		(lambda: dartwing.enqueue("frappe.utils.data.flt", value="2.5"), "unexpected keyword argument 'value'"),
		(lambda: dartwing.enqueue(tasks.sync, acount="acme"), "unexpected keyword argument 'acount'"),
		(lambda: dartwing.enqueue(tasks.sync, pages=3), "missing a required argument: 'account'"),
		(lambda: dartwing.enqueue(tasks.sync, now=True, acount="acme"), "'acount'"),
		(lambda: tasks.decorated_sync.enqueue(acount="acme"), "unexpected keyword argument 'acount'"),
		(lambda: dartwing.enqueue(f"{app.name}.tasks.nope", account="acme"), "cannot be imported"),
		(lambda: dartwing.enqueue("no_such_app.tasks.run"), "cannot be imported"),
		(lambda: dartwing.enqueue(f"{app.name}.tasks.CALLS"), "is not a function"),
	]  # fmt: skip
	for call, message in refused:
		with pytest.raises(TypeError, match=re.escape(message)):
			call()
		frappe.local.message_log = []
	assert _stored_counts() == before
	assert not frappe.db.exists("Job Type", "frappe.utils.data.flt")


def test_a_function_taking_keywords_accepts_any(app):
	answer = dartwing.enqueue(tasks_module(app).flexible, account="acme", colour="blue", sizes=[1, 2])
	frappe.db.commit()
	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(answer["job_id"], states.COMPLETED)
	assert frappe.parse_json(job.result) == {"account": "acme", "colour": "blue", "sizes": [1, 2]}


def test_a_function_job_submitted_over_http_binds_its_parameters(app, live):
	for function in ("sync", "flexible"):
		method_jobs.ensure_job_type(f"{app.name}.tasks.{function}")
	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	try:
		client = live.session(manager)
		before = _stored_counts()
		for parameters, argument in (({"acount": "acme"}, "acount"), ({"pages": 1}, "account")):
			refused = live.call(
				client,
				"POST",
				"submit_job",
				job_type=f"{app.name}.tasks.sync",
				parameters=json.dumps(parameters),
				organization=app.organization,
			)
			assert refused.status_code == 417, refused.text[:500]
			assert f"'{argument}'" in error_text(refused), refused.text[:500]
		assert _stored_counts() == before

		accepted = live.call(
			client,
			"POST",
			"submit_job",
			job_type=f"{app.name}.tasks.flexible",
			parameters=json.dumps({"account": "http", "anything": True}),
			organization=app.organization,
		)
		assert accepted.status_code == 200, accepted.text[:500]
		job_id = accepted.json()["message"]["job_id"]
		assert helpers.run_burst_worker().returncode == 0
		job = helpers.wait_for_status(job_id, states.COMPLETED)
		assert frappe.parse_json(job.result) == {"account": "http", "anything": True}
	finally:
		frappe.delete_doc("User", manager, ignore_permissions=True, force=True)
		frappe.db.commit()


def _write_module(app, name: str, text: str):
	"""The app's module ``name`` rewritten as a deploy does: the file, no stale bytecode, and this
	process's copy reloaded (the worker is a new process and reads the file)."""
	with open(os.path.join(app.folder, f"{name}.py"), "w") as module:
		module.write(textwrap.dedent(text))
	shutil.rmtree(os.path.join(app.folder, "__pycache__"), ignore_errors=True)
	importlib.invalidate_caches()
	module_name = f"{app.name}.{name}"
	if module_name in sys.modules:
		importlib.reload(sys.modules[module_name])


def test_a_job_whose_function_changed_after_submit_goes_to_dead_letter_at_once(app):
	_write_module(app, "changing", "def work(count):\n\treturn {'count': count}\n")
	path = f"{app.name}.changing.work"
	job_id = dartwing.enqueue(path, retries=3, backoff="0", count=3)["job_id"]
	frappe.db.commit()
	_write_module(app, "changing", "def work(number_of_items):\n\treturn {'items': number_of_items}\n")

	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(job_id, states.DEAD_LETTER)
	assert job.attempt == 1 and job.max_retries == 3  # no retry spent
	assert job.error_type == "UnrunnableCall"
	assert "unexpected keyword argument 'count'" in job.error_message and path in job.error_message
	assert helpers.events(job_id) == ["Submitted", "Queued", "Started", "Dead Lettered"]

	# A manager's edited retry is bound to the function as it is now.
	with pytest.raises(TypeError, match="'count'"):
		manual_retry.retry(job_id, {"count": 3})
	frappe.db.rollback()
	frappe.local.message_log = []
	manual_retry.retry(job_id, {"number_of_items": 3})
	frappe.db.commit()
	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(job_id, states.COMPLETED)
	assert frappe.parse_json(job.result) == {"items": 3}


def test_a_job_type_method_cannot_be_set_or_changed_by_hand(app):
	sync = tasks_module(app).sync
	path = f"{app.name}.tasks.sync"
	dartwing.enqueue(sync, account="acme")
	frappe.db.commit()
	job_type = frappe.get_doc("Job Type", path)
	job_type.method = "os.system"
	with pytest.raises(frappe.PermissionError, match="set by code"):
		job_type.save()
	frappe.db.rollback()
	frappe.clear_document_cache("Job Type", path)  # get_doc shares its object with the cache
	forged = frappe.get_doc(
		{"doctype": "Job Type", "job_type_name": helpers.unique("forged"), "title": "forged",
		 "method": "os.system", "method_signature": "0" * 64, "queue": "default"}
	)  # fmt: skip
	with pytest.raises(frappe.PermissionError, match="set by code"):
		forged.insert()
	frappe.db.rollback()

	# Around the controller (SQL), a queued job's method is swapped: the signature no longer holds,
	# so the worker imports nothing and the job fails for good; new submits are refused.
	job_id = dartwing.enqueue(sync, account="b")["job_id"]
	frappe.db.commit()
	frappe.db.sql("UPDATE `tabJob Type` SET method = 'os.getcwd' WHERE name = %s", path)
	frappe.db.commit()
	frappe.clear_document_cache("Job Type", path)
	try:
		assert helpers.run_burst_worker().returncode == 0
		job = helpers.wait_for_status(job_id, states.FAILED)
		assert "not registered by code" in job.error_message
		with pytest.raises(frappe.ValidationError, match="not registered by code"):
			helpers.submit_as("Administrator", path, {"account": "x"})
	finally:
		frappe.db.rollback()
		frappe.db.sql("UPDATE `tabJob Type` SET method = %s WHERE name = %s", (path, path))
		frappe.db.commit()
		frappe.clear_document_cache("Job Type", path)


def test_a_scheduler_event_moved_to_dartwing_schedules_runs_as_a_job(app):
	"""The app's hooks declare ``nightly_digest`` in ``dartwing_job_schedules``; install-app set it up."""
	name = f"{app.name}_nightly_digest"
	schedule = frappe.get_doc("Job Schedule", name)
	assert schedule.job_type == f"{app.name}.tasks.nightly_digest" and schedule.source == "Hooks"
	assert schedule.organization == app.organization  # the default organization
	assert frappe.db.get_value("Job Type", schedule.job_type, "max_retries") == 1
	before = calls(app, "digest")
	outcome = schedules.fire_due_schedules(now=schedule.next_run_at)
	frappe.db.commit()
	(job_id,) = next(o["jobs"] for o in outcome if o["schedule"] == name)
	assert helpers.run_burst_worker().returncode == 0
	job = helpers.wait_for_status(job_id, states.COMPLETED)
	assert job.progress_message == "digest sent" and job.job_schedule == name
	assert calls(app, "digest") == before + 1
	assert helpers.events(job_id) == ["Submitted", "Queued", "Started", "Completed"]


def set_status(organization: str, status: str) -> None:
	doc = frappe.get_doc("Organization", organization)
	doc.status = status
	doc.save(ignore_permissions=True)
	frappe.db.commit()


def test_the_organization_may_be_left_out_when_it_is_obvious(app):
	from dartwing.dartwing_core.background_jobs.submit import submit
	from dartwing.dartwing_core.background_jobs.tenancy import obvious_organization

	assert obvious_organization() == app.organization  # the default
	member_org, member = helpers.make_org_with_user()
	try:
		# A member of one organization gets it; a manager and server code get the default.
		helpers.submit_as(member, "demo_echo", {"who": "member"})
		assert frappe.db.get_value("Background Job", {"owner": member}, "organization") == member_org
		answer = submit("demo_echo", {"who": "admin"})
		assert frappe.db.get_value("Background Job", answer["job_id"], "organization") == app.organization
		frappe.db.rollback()
		# Without a default: the only Active organization besides Dartwing System, else none.
		set_default_organization(None)
		set_status(member_org, "Suspended")
		others = frappe.get_all(
			"Organization",
			filters={"status": "Active", "name": ("!=", tenancy.SYSTEM_ORGANIZATION)},
			pluck="name",
		)
		assert others == [app.organization], "the test site has other organizations"
		assert obvious_organization() == app.organization
		set_status(member_org, "Active")
		assert obvious_organization() is None
		with pytest.raises(frappe.ValidationError, match="several organizations"):
			submit("demo_echo", {"who": "admin"})
	finally:
		frappe.db.rollback()
		set_default_organization(app.organization)
		helpers.cleanup_org(member_org)


def test_first_minutes_setup_wizard_done_and_desk_opens_on_background_jobs():
	"""What ``scripts/setup.sh`` runs on a development site (``bench execute``)."""
	time_zone = frappe.db.get_single_value("System Settings", "time_zone")
	try:
		bench("execute", "dartwing.install.complete_dev_setup")
		bench("execute", "dartwing.install.complete_dev_setup")  # again: nothing changes
		frappe.db.rollback()
		assert frappe.db.get_single_value("System Settings", "setup_complete") == 1
		assert frappe.db.get_value("User", "Administrator", "default_workspace") == "Background Jobs"
		assert frappe.db.exists("Workspace", "Background Jobs")
	finally:
		frappe.db.set_single_value("System Settings", "time_zone", time_zone)
		frappe.db.commit()


def test_no_http_call_names_a_function_to_run(app, live):
	"""Server side only: a System Manager cannot enqueue a path or give a Job Type one over HTTP."""
	path = f"{app.name}.tasks.sync"
	dartwing.enqueue(path, account="http")
	frappe.db.commit()
	manager = helpers.make_user(roles=("System Manager",))
	try:
		client = live.session(manager)
		for method in ("dartwing.enqueue", "dartwing.dartwing_core.background_jobs.enqueue.enqueue"):
			answer = client.post(f"{live.url}/api/method/{method}", json={"method": "os.getcwd"}, timeout=30)
			assert answer.status_code == 403, (method, answer.text[:500])
		changed = client.put(
			f"{live.url}/api/resource/Job Type/{path}", json={"method": "os.getcwd"}, timeout=30
		)
		assert changed.status_code == 403 and "set by code" in changed.text
		set_value = client.post(
			f"{live.url}/api/method/frappe.client.set_value",
			json={"doctype": "Job Type", "name": path, "fieldname": "method", "value": "os.getcwd"},
			timeout=30,
		)
		assert set_value.status_code == 403
		forged = {"job_type_name": "forged_over_http", "title": "forged", "queue": "default"}
		made = client.post(
			f"{live.url}/api/resource/Job Type",
			json={**forged, "method": "os.getcwd", "method_signature": "0" * 64},
			timeout=30,
		)
		assert made.status_code == 403
		frappe.db.rollback()
		assert frappe.db.get_value("Job Type", path, "method") == path
		assert not frappe.db.exists("Job Type", "forged_over_http")
		assert not frappe.db.exists("Job Type", "os.getcwd")
	finally:
		frappe.delete_doc("User", manager, ignore_permissions=True, force=True)
		frappe.db.commit()


def test_uninstalling_an_app_stops_its_functions_and_keeps_their_history():
	throwaway = ThrowawayApp(f"dw_gone_{frappe.generate_hash(length=6)}")
	name = throwaway.name
	try:
		throwaway.write("tasks.py", "def tick():\n\treturn 1\n")
		throwaway.write(
			"hooks.py",
			f'dartwing_job_schedules = [{{"schedule_name": "{name}_tick", "method": "{name}.tasks.tick", '
			'"cron_expression": "* * * * *", "organization": "Dartwing System"}]\n',
		)
		throwaway.install()
		job_type = f"{name}.tasks.tick"
		assert frappe.db.get_value("Job Schedule", f"{name}_tick", "job_type") == job_type
		job_id = dartwing.enqueue(job_type, organization="Dartwing System")["job_id"]
		frappe.db.commit()

		bench("uninstall-app", name, "--yes", "--no-backup", "--force")
		throwaway.installed = False
		frappe.db.rollback()
		assert not frappe.db.exists("Job Schedule", f"{name}_tick")
		assert frappe.db.get_value("Job Type", job_type, "enabled") == 0
		assert frappe.db.exists("Background Job", job_id)
	finally:
		throwaway.remove()
