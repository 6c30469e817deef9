"""The jobs API over real HTTP, with real logins: two organizations, a manager and a guest.

Every isolation rule and error status of the API is asserted against a running web server.
"""

import json

import frappe
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dartwing.tests.integration import helpers

API = "dartwing.dartwing_core.api.jobs"


@pytest.fixture(scope="module")
def people(live):
	"""Organization A (owner a1, member a2), organization B (b1), a job manager, and their sessions."""
	a1, a2, b1 = helpers.make_user(), helpers.make_user(), helpers.make_user()
	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	org_a, org_b = helpers.make_org(members=[a1, a2]), helpers.make_org(members=[b1])
	deduped = helpers.make_job_type(dedup_window_seconds=600)
	sessions = {
		"a1": live.session(a1),
		"a2": live.session(a2),
		"b1": live.session(b1),
		"manager": live.session(manager),
		"guest": live.session(None),
	}
	yield frappe._dict(org_a=org_a, org_b=org_b, deduped=deduped, manager_user=manager, **sessions)
	helpers.delete_job_type(deduped)
	helpers.cleanup_org(org_a)
	helpers.cleanup_org(org_b)
	frappe.delete_doc("User", manager, ignore_permissions=True, force=True)
	frappe.db.commit()


def message(response):
	assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
	return response.json()["message"]


def error_text(response) -> str:
	body = response.json()
	texts = [json.loads(m).get("message", "") for m in json.loads(body.get("_server_messages") or "[]")]
	return " ".join(texts) + " " + (body.get("exception") or "")


def job_count(organization: str) -> int:
	frappe.db.rollback()
	return frappe.db.count("Background Job", {"organization": organization})


def submit(live, people, who="a1", org_key="org_a", job_type="demo_echo", **params):
	return message(
		live.call(
			people[who], "POST", "submit_job", job_type=job_type, organization=people[org_key], **params
		)
	)


def test_submit_status_history_and_list_for_the_owner(live, people):
	answer = submit(live, people, parameters={"hello": "http"}, priority="High")
	assert answer["deduplicated"] is False and answer["status"] in ("Queued", "Pending")
	job_id = answer["job_id"]

	status = message(live.call(people.a1, "GET", "get_job_status", job_id=job_id))
	assert (
		status["job_id"] == job_id and status["priority"] == "High" and status["organization"] == people.org_a
	)
	assert "traceback" not in status, "tracebacks are for managers only"
	assert "traceback" in message(live.call(people.manager, "GET", "get_job_status", job_id=job_id))

	history = message(live.call(people.a1, "GET", "get_job_history", job_id=job_id))
	assert [event["event"] for event in history["events"]][:2] == ["Submitted", "Queued"]

	listed = message(live.call(people.a2, "GET", "list_jobs", organization=people.org_a, limit=100))
	assert job_id in {job["job_id"] for job in listed["jobs"]}


def test_list_jobs_filters_and_paginates(live, people):
	made = [submit(live, people, job_type="demo_echo", parameters={"page": n})["job_id"] for n in range(5)]
	first = message(live.call(people.a1, "GET", "list_jobs", job_type="demo_echo", limit=2, offset=0))
	second = message(live.call(people.a1, "GET", "list_jobs", job_type="demo_echo", limit=2, offset=2))
	assert first["total"] >= 5 and first["limit"] == 2 and len(first["jobs"]) == 2
	assert not {j["job_id"] for j in first["jobs"]} & {j["job_id"] for j in second["jobs"]}
	assert first["jobs"][0]["job_id"] == made[-1], "newest first"
	assert (
		message(live.call(people.a1, "GET", "list_jobs", status="Completed,Canceled", job_type="demo_echo"))[
			"total"
		]
		== 0
	)
	assert message(live.call(people.a1, "GET", "list_jobs", to_date="2000-01-01"))["total"] == 0
	assert message(live.call(people.a1, "GET", "list_jobs", from_date="2000-01-01"))["total"] >= 5


def test_tenant_isolation(live, people):
	job_id = submit(live, people)["job_id"]
	log_names = frappe.get_all("Job Execution Log", filters={"job": job_id}, pluck="name")

	for method, verb in (("get_job_status", "GET"), ("get_job_history", "GET"), ("cancel_job", "POST")):
		response = live.call(people.b1, verb, method, job_id=job_id)
		assert response.status_code == 404, f"{method}: {response.status_code}"
	assert live.call(people.b1, "POST", "retry_job", job_id=job_id).status_code in (403, 404)

	listed = message(live.call(people.b1, "GET", "list_jobs", limit=100))
	assert all(job["organization"] == people.org_b for job in listed["jobs"])
	assert message(live.call(people.b1, "GET", "list_jobs", organization=people.org_a))["total"] == 0
	assert live.call(people.b1, "GET", "get_job_metrics", organization=people.org_a).status_code == 403
	metrics = message(live.call(people.b1, "GET", "get_job_metrics"))
	assert sum(metrics["counts_by_status"].values()) == job_count(people.org_b)

	resource = f"{live.url}/api/resource/Background Job"
	# someone else's job answers "not found", like a job that does not exist
	assert people.b1.get(f"{resource}/{job_id}", timeout=30).status_code == 404
	listed = people.b1.get(
		resource, params={"fields": '["name","organization"]', "limit_page_length": 0}, timeout=30
	)
	assert job_id not in {row["name"] for row in listed.json()["data"]}
	assert all(row["organization"] == people.org_b for row in listed.json()["data"])
	logs = people.b1.get(
		f"{live.url}/api/resource/Job Execution Log", params={"limit_page_length": 0}, timeout=30
	).json()["data"]
	assert not {row["name"] for row in logs} & {str(name) for name in log_names}
	assert (
		people.b1.get(f"{live.url}/api/resource/Job Execution Log/{log_names[0]}", timeout=30).status_code
		== 404
	)
	organizations = people.b1.get(f"{live.url}/api/resource/Organization", timeout=30).json()["data"]
	assert {row["name"] for row in organizations} == {people.org_b}

	# A member of the same organization reads the job but cannot cancel someone else's.
	assert live.call(people.a2, "GET", "get_job_status", job_id=job_id).status_code == 200
	assert live.call(people.a2, "POST", "cancel_job", job_id=job_id).status_code == 403
	assert message(live.call(people.a1, "POST", "cancel_job", job_id=job_id))["status"] == "Canceled"


def test_manager_only_methods(live, people):
	job_id = submit(live, people)["job_id"]
	# The owner is told no; another organization is not even told the job exists.
	for who, status in (("a1", 403), ("b1", 404)):
		assert live.call(people[who], "POST", "retry_job", job_id=job_id).status_code == status
		assert live.call(people[who], "GET", "get_queue_stats").status_code == 403
		assert live.call(people[who], "POST", "pause_queue", queue="short").status_code == 403
		assert live.call(people[who], "POST", "retry_jobs", job_ids=[job_id]).status_code == 403
	stats = message(live.call(people.manager, "GET", "get_queue_stats"))
	assert any(row["job_type"] == "demo_echo" for row in stats["queues"])
	paused = message(live.call(people.manager, "POST", "pause_queue", job_type=people.deduped))
	assert paused["paused"] is True
	resumed = message(live.call(people.manager, "POST", "resume_queue", job_type=people.deduped))
	assert resumed["paused"] is False
	# The manager's cancel works on anyone's job.
	assert message(live.call(people.manager, "POST", "cancel_job", job_id=job_id))["status"] == "Canceled"


def test_manager_retries_one_job_with_edited_parameters_and_many_in_bulk(live, people):
	failed = [
		submit(live, people, who=who, job_type="demo_fail", parameters={"error": "permanent", "n": n})[
			"job_id"
		]
		for n, who in enumerate(("manager", "a1", "a1"))
	]
	helpers.run_burst_worker()
	assert {helpers.job(job).status for job in failed} == {"Failed"}

	# a1's job runs as a1: a manager who is not a System Manager may not change what it does
	refused = live.call(people.manager, "POST", "retry_job", job_id=failed[1], parameters={"fail_times": 0})
	assert refused.status_code == 403 and "System Manager" in error_text(refused)
	assert "fail_times" not in helpers.job(failed[1]).parameters

	edited = message(
		live.call(
			people.manager,
			"POST",
			"retry_job",
			job_id=failed[0],
			parameters={"error": "permanent", "fail_times": 0},
		)
	)
	assert edited == {"job_id": failed[0], "status": "Queued"}
	assert frappe.parse_json(helpers.job(failed[0]).parameters)["fail_times"] == 0

	completed = submit(live, people, parameters={"done": True})["job_id"]
	helpers.run_burst_worker()
	bulk = message(live.call(people.manager, "POST", "retry_jobs", job_ids=[failed[1], failed[2], completed]))
	by_job = {row["job_id"]: row for row in bulk["results"]}
	assert by_job[failed[1]]["status"] == by_job[failed[2]]["status"] == "Queued"
	assert by_job[completed].get("error"), "a Completed job cannot be retried"
	helpers.run_burst_worker()
	assert helpers.job(failed[0]).status == "Completed"


@pytest.mark.parametrize(
	"params, status, text",
	[
		({"job_type": "no_such_type"}, 417, "does not exist"),
		({"job_type": "demo_echo", "parameters": "[1, 2]"}, 417, "JSON object"),
		({"job_type": "demo_echo", "parameters": "{not json"}, 417, "JSON object"),
		({"job_type": "demo_echo", "priority": "Urgent"}, 417, "Priority"),
		({"job_type": "demo_echo", "run_at": "yesterday-ish"}, 417, "not a date"),
		({"job_type": "demo_echo", "depends_on": "JOB-NOPE-1"}, 404, "not found"),
		({"job_type": "demo_echo", "parameters": {"blob": "x" * 70 * 1024}}, 417, "limit"),
		({"job_type": "demo_echo", "reference_doctype": "User"}, 417, "reference_name"),
	],
)
def test_bad_input_gets_a_clear_error_and_leaves_nothing(live, people, params, status, text):
	before = job_count(people.org_a)
	response = live.call(people.a1, "POST", "submit_job", organization=people.org_a, **params)
	assert response.status_code == status, response.text[:300]
	assert text.lower() in error_text(response).lower()
	assert job_count(people.org_a) == before


def test_wrong_organization_and_suspended_organization(live, people):
	before = job_count(people.org_b)
	response = live.call(people.a1, "POST", "submit_job", job_type="demo_echo", organization=people.org_b)
	missing = live.call(people.a1, "POST", "submit_job", job_type="demo_echo", organization="no-such-org")
	# Someone else's organization answers exactly like one that does not exist.
	assert response.status_code == missing.status_code == 404
	assert error_text(response).replace(people.org_b, "X") == error_text(missing).replace("no-such-org", "X")
	assert job_count(people.org_b) == before

	outsider = helpers.make_user()
	suspended = helpers.make_org(members=[outsider], status="Suspended")
	try:
		session = live.session(outsider)
		response = live.call(session, "POST", "submit_job", job_type="demo_echo", organization=suspended)
		assert response.status_code == 403 and "suspended" in error_text(response)
		assert job_count(suspended) == 0
	finally:
		helpers.cleanup_org(suspended)


def test_unknown_job_ids_are_404(live, people):
	for method, verb in (("get_job_status", "GET"), ("get_job_history", "GET"), ("cancel_job", "POST")):
		assert live.call(people.a1, verb, method, job_id="JOB-2026-99999999").status_code == 404
	assert live.call(people.manager, "POST", "retry_job", job_id="JOB-2026-99999999").status_code == 404


def test_state_changes_refuse_get(live, people):
	before = job_count(people.org_a)
	response = people.a1.get(
		f"{live.url}/api/method/{API}.submit_job",
		params={"job_type": "demo_echo", "organization": people.org_a},
		timeout=30,
	)
	assert response.status_code == 403 and "PermissionError" in response.text
	assert job_count(people.org_a) == before
	job_id = submit(live, people)["job_id"]
	for method in ("cancel_job", "retry_job"):
		response = people.manager.get(
			f"{live.url}/api/method/{API}.{method}", params={"job_id": job_id}, timeout=30
		)
		assert response.status_code == 403
	assert helpers.job(job_id).status != "Canceled"


def test_strict_duplicate_is_409_and_plain_duplicate_returns_the_job(live, people):
	first = submit(live, people, job_type=people.deduped, parameters={"same": 1})
	again = submit(live, people, job_type=people.deduped, parameters={"same": 1})
	assert again == {"job_id": first["job_id"], "status": again["status"], "deduplicated": True}
	strict = live.call(people.a1, "POST", "submit_job", job_type=people.deduped, organization=people.org_a,
		parameters={"same": 1}, strict=1,
	)  # fmt: skip
	assert strict.status_code == 409 and first["job_id"] in error_text(strict)


def test_guests_get_nothing(live, people):
	job_id = submit(live, people)["job_id"]
	for method, verb, params in (
		("submit_job", "POST", {"job_type": "demo_echo", "organization": people.org_a}),
		("get_job_status", "GET", {"job_id": job_id}),
		("get_job_history", "GET", {"job_id": job_id}),
		("list_jobs", "GET", {}),
		("cancel_job", "POST", {"job_id": job_id}),
		("get_job_metrics", "GET", {}),
		("get_queue_stats", "GET", {}),
		("prometheus_metrics", "GET", {}),
	):
		response = live.call(people.guest, verb, method, **params)
		assert response.status_code == 403, f"{method}: {response.status_code}"
	assert people.guest.get(f"{live.url}/api/resource/Background Job", timeout=30).status_code == 403


def test_per_user_rate_limit_answers_429_with_retry_after(live, people):
	settings = frappe.get_doc("Background Job Settings")
	previous = settings.api_rate_limit_per_minute
	settings.api_rate_limit_per_minute = 5
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	caller = helpers.make_user()
	session = live.session(caller)
	helpers.start_well_inside_a_rate_window()
	try:
		answers = [live.call(session, "GET", "list_jobs").status_code for _ in range(5)]
		assert answers == [200] * 5
		limited = live.call(session, "GET", "list_jobs")
		assert limited.status_code == 429
		assert 1 <= int(limited.headers["Retry-After"]) <= 61
		# Limits are per user: another user is not affected.
		assert live.call(people.b1, "GET", "list_jobs").status_code == 200
	finally:
		settings.reload()
		settings.api_rate_limit_per_minute = previous
		settings.save(ignore_permissions=True)
		frappe.delete_doc("User", caller, ignore_permissions=True, force=True)
		frappe.db.commit()


def scrape(live, session) -> dict:
	response = session.get(f"{live.url}/api/method/{API}.prometheus_metrics", timeout=30)
	assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
	return {family.name: family for family in text_string_to_metric_families(response.text)}


def sample(families: dict, family: str, name: str, **labels) -> float:
	return sum(
		s.value
		for s in families[family].samples
		if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
	)


def test_prometheus_endpoint_for_a_manager_session_or_api_key(live, people):
	echo, failing = (
		helpers.make_job_type(queue="short"),
		helpers.make_job_type(handler="demo_fail", queue="short"),
	)
	before = scrape(live, people.manager)
	for n in range(3):
		submit(live, people, job_type=echo, parameters={"for": "prometheus", "n": n})
	submit(live, people, job_type=failing, parameters={"error": "permanent"})
	helpers.run_burst_worker()
	after = scrape(live, people.manager)
	assert {
		"dartwing_jobs_finished",
		"dartwing_job_run_seconds",
		"dartwing_queue_jobs",
		"dartwing_active_workers",
	} <= set(after)

	def grew(family, name, **labels):
		return sample(after, family, name, **labels) - sample(before, family, name, **labels)

	finished = "dartwing_jobs_finished", "dartwing_jobs_finished_total"
	run_seconds = "dartwing_job_run_seconds"
	assert grew(*finished, job_type=echo, status="Completed") == 3
	assert grew(*finished, job_type=failing, status="Failed") == 1
	assert grew(run_seconds, f"{run_seconds}_count", job_type=echo) == 3
	assert grew(run_seconds, f"{run_seconds}_bucket", job_type=echo, le="+Inf") == 3
	frappe.db.rollback()
	waiting = frappe.db.count("Background Job", {"status": "Queued", "queue": "short"})
	assert (
		sample(after, "dartwing_queue_jobs", "dartwing_queue_jobs", queue="short", status="Queued") == waiting
	)

	user = frappe.get_doc("User", people.manager_user)
	api_secret = frappe.generate_hash(length=15)
	user.api_key = user.api_key or frappe.generate_hash(length=15)
	user.api_secret = api_secret
	user.save(ignore_permissions=True)
	frappe.db.commit()
	headers = {"Authorization": f"token {user.api_key}:{api_secret}"}
	import requests

	with_key = requests.get(f"{live.url}/api/method/{API}.prometheus_metrics", headers=headers, timeout=30)
	assert with_key.status_code == 200 and "dartwing_jobs_finished_total" in with_key.text
	assert live.call(people.a1, "GET", "prometheus_metrics").status_code == 403
	helpers.delete_job_type(echo)
	helpers.delete_job_type(failing)


DOCTYPES = (
	"Background Job", "Job Type", "Job Schedule", "Job Execution Log", "Organization", "Background Job Settings",
)  # fmt: skip


def test_desk_loads_every_doctype_list_and_form(live, people):
	"""What Desk fetches to draw each list and form answers without errors, for a manager."""
	job_id = submit(live, people)["job_id"]
	system_manager = helpers.make_user(roles=("System Manager",))
	admin = live.session(system_manager)
	for doctype in DOCTYPES:
		meta = admin.get(
			f"{live.url}/api/method/frappe.desk.form.load.getdoctype", params={"doctype": doctype}
		)
		assert meta.status_code == 200, f"{doctype}: {meta.text[:300]}"
		if doctype == "Background Job Settings":
			name = doctype
		else:
			listed = admin.get(
				f"{live.url}/api/method/frappe.desk.reportview.get",
				params={"doctype": doctype, "fields": '["name"]', "page_length": 5},
			)
			assert listed.status_code == 200, f"{doctype} list: {listed.text[:300]}"
			values = listed.json()["message"].get("values") or []
			name = job_id if doctype == "Background Job" else (values[0][0] if values else None)
		if name:
			form = admin.get(
				f"{live.url}/api/method/frappe.desk.form.load.getdoc",
				params={"doctype": doctype, "name": name},
			)
			assert form.status_code == 200, f"{doctype} {name}: {form.text[:300]}"
	frappe.delete_doc("User", system_manager, ignore_permissions=True, force=True)
	frappe.db.commit()
