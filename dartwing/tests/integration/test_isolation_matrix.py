"""Tenant isolation on every surface Frappe opens, over real HTTP and Socket.IO.

Two organizations, A and B, each with a member and jobs whose parameters, errors and logs carry
markers; a job manager, a System Manager, a logged-in user with no Dartwing role and a guest.
Each surface is asked by every caller who must not see A's data; no answer may carry one of A's
markers (organization, member e-mail, job names, parameters, error text) or count A's rows. The
same surfaces asked by A's member and by managers return A's rows, so each check can fail.
"""

import json
import threading
import time

import frappe
import pytest
import socketio

from dartwing.dartwing_core.background_jobs import permissions
from dartwing.tests.integration import helpers


@pytest.fixture(scope="module")
def world(live):
	a, b = helpers.make_user(), helpers.make_user()
	no_role = helpers.make_user(roles=())
	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	system_manager = helpers.make_user(roles=("System Manager",))
	org_a, org_b = helpers.make_org(members=[a]), helpers.make_org(members=[b])
	secret = f"secret-{frappe.generate_hash(length=10)}"
	job_a = helpers.submit_as(a, "demo_echo", {"api_token": secret}, organization=org_a)["job_id"]
	child_a = helpers.submit_as(a, "demo_echo", {"child": secret}, organization=org_a, depends_on=[job_a])[
		"job_id"
	]
	job_b = helpers.submit_as(b, "demo_echo", {"mine": "b"}, organization=org_b)["job_id"]
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET error_message = %s, progress_message = %s WHERE name = %s",
		(f"failed with {secret}", f"step {secret}", job_a),
	)
	frappe.get_doc(
		{"doctype": "ToDo", "description": "look", "reference_type": "Background Job", "reference_name": job_a,
		 "allocated_to": manager}
	).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.sql("UPDATE `tabBackground Job` SET _user_tags = ',urgent' WHERE name IN %s", ((job_a, job_b),))
	frappe.db.commit()
	helpers.drain_queues()

	markers_a = [org_a, a, job_a, child_a, secret]
	sessions = {
		"a": live.session(a),
		"b": live.session(b),
		"no_role": live.session(no_role),
		"guest": live.session(None),
		"manager": live.session(manager),
		"system_manager": live.session(system_manager),
	}
	yield frappe._dict(
		org_a=org_a, org_b=org_b, a=a, b=b, job_a=job_a, child_a=child_a, job_b=job_b, secret=secret,
		markers_a=markers_a, sessions=sessions,
	)  # fmt: skip
	frappe.db.delete("ToDo", {"reference_type": "Background Job", "reference_name": job_a})
	helpers.cleanup_org(org_a)
	helpers.cleanup_org(org_b)
	for user in (no_role, manager, system_manager):
		frappe.delete_doc("User", user, ignore_permissions=True, force=True)
	frappe.db.commit()


OUTSIDERS = ("b", "no_role", "guest")
INSIDERS = ("a", "manager", "system_manager")
TENANT_DOCTYPES = sorted(permissions.TENANT_DOCTYPES)


def call(live, world, who, method, verb="GET", **params):
	client = world.sessions[who]
	url = f"{live.url}/api/method/{method}"
	encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
	if verb == "GET":
		return client.get(url, params=encoded, timeout=60)
	return client.post(url, data=encoded, timeout=60)


def _strings_in(value) -> list[str]:
	if isinstance(value, str):
		return [value]
	if isinstance(value, dict):
		value = list(value.values())
	if isinstance(value, list | tuple):
		return [text for item in value for text in _strings_in(item)]
	return []


def leaked(world, response, params=None) -> list[str]:
	"""A's markers in the answer, leaving out what the caller sent (error messages echo names)."""
	text = response.text
	for sent in sorted(_strings_in(params or {}), key=len, reverse=True):
		if len(sent) > 3:
			text = text.replace(sent, "").replace(json.dumps(sent)[1:-1], "")
	return [marker for marker in world.markers_a if marker in text]


def assert_nothing_of_a(world, who, response, surface, params=None):
	assert (
		response.status_code < 500
	), f"{surface} as {who}: HTTP {response.status_code} {response.text[:300]}"
	found = leaked(world, response, params)
	assert not found, f"{surface} as {who} leaked {found}: {response.text[:300]}"


def message(response):
	assert response.status_code == 200, response.text[:300]
	return response.json().get("message")


# Surfaces: (name, method, verb, params). Each is asked by outsiders (must leak nothing of A) and
# by A's member (must find A's rows: proves the surface would show them).
def surfaces(world):
	job_filter = {"organization": world.org_a}
	secret_like = {"parameters": ["like", f"%{world.secret}%"]}
	rows = []
	for doctype in TENANT_DOCTYPES:
		for ignore in (0, 1):
			rows.append(
				(
					f"search_link {doctype} ignore_user_permissions={ignore}",
					"frappe.desk.search.search_link",
					{"doctype": doctype, "txt": "", "ignore_user_permissions": ignore, "page_length": 100},
				)
			)
		rows.append(
			(
				f"search_widget {doctype} with searchfield and filter_fields",
				"frappe.desk.search.search_widget",
				{
					"doctype": doctype,
					"txt": "",
					"searchfield": "parameters" if doctype == "Background Job" else "name",
					"filter_fields": json.dumps(["owner"]),
					"ignore_user_permissions": 1,
					"page_length": 100,
				},
			)
		)
		rows.append((f"get_list {doctype}", "frappe.client.get_list", {"doctype": doctype, "fields": ["*"],
			"limit_page_length": 500, **({"parent": "Organization"} if doctype == "Organization Member" else {}),
			**({"parent": "Background Job"} if doctype == "Background Job Dependency" else {})}))  # fmt: skip
		rows.append(
			(
				f"reportview.get {doctype}",
				"frappe.desk.reportview.get",
				{"doctype": doctype, "fields": ["name", "owner"], "page_length": 500},
			)
		)
	rows += [
		("get_count by organization", "frappe.client.get_count", {"doctype": "Background Job", "filters": job_filter}),
		("get_count by parameter text", "frappe.client.get_count", {"doctype": "Background Job", "filters": secret_like}),
		("get_count of members", "frappe.client.get_count", {"doctype": "Organization Member", "filters": {"parent": world.org_a}}),
		("reportview.get_count", "frappe.desk.reportview.get_count", {"doctype": "Background Job", "filters": secret_like}),
		("group by owner", "frappe.desk.listview.get_group_by_count", {"doctype": "Background Job", "current_filters": {}, "field": "owner"}),
		("group by organization", "frappe.desk.listview.get_group_by_count", {"doctype": "Background Job", "current_filters": {}, "field": "organization"}),
		("group by assigned_to", "frappe.desk.listview.get_group_by_count", {"doctype": "Background Job", "current_filters": secret_like, "field": "assigned_to"}),
		("sidebar stats", "frappe.desk.reportview.get_sidebar_stats", {"doctype": "Background Job", "stats": ["_user_tags", "owner"]}),
		("get_value of a member row", "frappe.client.get_value", {"doctype": "Organization Member", "fieldname": ["user", "parent"], "filters": {"parent": world.org_a}, "parent": "Organization"}),
		("get_value of a dependency row", "frappe.client.get_value", {"doctype": "Background Job Dependency", "fieldname": ["parent", "depends_on"], "filters": {"depends_on": world.job_a}, "parent": "Background Job"}),
		("get a job", "frappe.client.get", {"doctype": "Background Job", "name": world.job_a}),
		("get an organization", "frappe.client.get", {"doctype": "Organization", "name": world.org_a}),
		("getdoc (form load and timeline)", "frappe.desk.form.load.getdoc", {"doctype": "Background Job", "name": world.job_a}),
		("getdoc of an organization", "frappe.desk.form.load.getdoc", {"doctype": "Organization", "name": world.org_a}),
		("validate_link of an organization", "frappe.client.validate_link", {"doctype": "Organization", "docname": world.org_a, "fields": ["name"]}),
		("validate_link of a job", "frappe.client.validate_link", {"doctype": "Background Job", "docname": world.job_a}),
		("tagged documents", "frappe.desk.doctype.tag.tag.get_tagged_docs", {"doctype": "Background Job", "tag": "%urgent%"}),
		("report: Job Type Health", "frappe.desk.query_report.run", {"report_name": "Job Type Health", "filters": {"from_date": "2000-01-01", "to_date": "2100-01-01", "organization": world.org_a}}),
		("report: Job Type Health, all", "frappe.desk.query_report.run", {"report_name": "Job Type Health", "filters": {"from_date": "2000-01-01", "to_date": "2100-01-01"}}),
		("chart: jobs per hour", "dartwing.dartwing_core.api.desk.jobs_per_hour", {}),
		("chart: run time", "dartwing.dartwing_core.api.desk.run_time_by_job_type", {}),
		("card: failed in 24 h", "dartwing.dartwing_core.api.desk.failed_last_24h", {}),
		("jobs on a reference document", "dartwing.dartwing_core.api.desk.get_reference_jobs", {"reference_doctype": "Organization", "reference_name": world.org_a}),
		("metrics", "dartwing.dartwing_core.api.jobs.get_job_metrics", {}),
		("list_jobs", "dartwing.dartwing_core.api.jobs.list_jobs", {"limit": 100}),
		("job status", "dartwing.dartwing_core.api.jobs.get_job_status", {"job_id": world.job_a}),
		("job history", "dartwing.dartwing_core.api.jobs.get_job_history", {"job_id": world.job_a}),
	]  # fmt: skip
	return rows


def test_outsiders_see_nothing_of_another_organization_on_any_surface(live, world):
	checked = 0
	for name, method, params in surfaces(world):
		for who in OUTSIDERS:
			response = call(live, world, who, method, **params)
			assert_nothing_of_a(world, who, response, name, params)
			checked += 1
	assert checked > 100


def test_the_same_surfaces_show_a_its_own_rows(live, world):
	"""Positive control: what outsiders cannot see is really there for A's member and managers."""
	expectations = {
		"search_link Background Job ignore_user_permissions=1": world.job_a,
		"search_link Organization ignore_user_permissions=1": world.org_a,
		"get_list Organization Member": world.a,
		"get_list Background Job Dependency": world.job_a,
		"reportview.get Job Execution Log": world.a,
		"get a job": world.secret,
		"getdoc (form load and timeline)": world.secret,
		"validate_link of an organization": world.org_a,
		"tagged documents": world.job_a,
		"get_value of a member row": world.a,
		"group by owner": world.a,
	}
	by_name = {name: (method, params) for name, method, params in surfaces(world)}
	for name, marker in expectations.items():
		method, params = by_name[name]
		for who in INSIDERS:
			response = call(live, world, who, method, **params)
			assert marker in response.text, f"{name} as {who} did not show {marker}: {response.text[:300]}"
	manager_groups = message(
		call(live, world, "manager", "frappe.desk.listview.get_group_by_count",
			doctype="Background Job", current_filters={"name": world.job_a}, field="assigned_to")
	)  # fmt: skip
	assert [row["count"] for row in manager_groups] == [1]


def test_counts_tell_nothing_about_other_organizations(live, world):
	secret_prefix = {"parameters": ["like", f"%{world.secret[:9]}%"]}
	for who in ("b",):
		for filters in ({"organization": world.org_a}, secret_prefix, {}):
			count = message(
				call(live, world, who, "frappe.client.get_count", doctype="Background Job", filters=filters)
			)
			own = frappe.db.count(
				"Background Job", {"organization": world.org_b, **({} if filters.get("organization") else {})}
			)
			assert count == (0 if filters else own), f"{filters}: {count}"  # fmt: skip
	assert (
		message(
			call(live, world, "a", "frappe.client.get_count", doctype="Background Job", filters=secret_prefix)
		)
		== 2
	)
	for who in ("no_role", "guest"):
		response = call(live, world, who, "frappe.client.get_count", doctype="Background Job", filters={})
		assert response.status_code == 403, response.text[:200]


def test_exports_carry_only_the_callers_rows(live, world):
	for who, expect_a in (("b", False), ("a", True)):
		response = call(
			live, world, who, "frappe.desk.reportview.export_query", verb="POST",
			doctype="Background Job", file_format_type="CSV",
			fields=json.dumps(["`tabBackground Job`.`name`", "`tabBackground Job`.`parameters`"]),
			filters=json.dumps([]), title="jobs",
		)  # fmt: skip
		assert response.status_code == 200, response.text[:300]
		assert (world.secret in response.text) is expect_a
		assert (world.job_b in response.text) is (not expect_a)


def test_members_metrics_count_only_their_own_workers_and_queues(live, world):
	metrics = message(call(live, world, "b", "dartwing.dartwing_core.api.jobs.get_job_metrics"))
	assert metrics["workers"]["registered"] is None, "the bench's worker count tells of other tenants"
	depth = sum(row["jobs"] for row in metrics["queue_depth"])
	assert depth <= frappe.db.count("Background Job", {"organization": world.org_b})
	assert (
		message(call(live, world, "manager", "dartwing.dartwing_core.api.jobs.get_job_metrics"))["workers"][
			"registered"
		]
		is not None
	)


class RoomListener:
	"""A Socket.IO client of the site, logged in as a user, recording every event it receives."""

	def __init__(self, live, session):
		self.events: list[tuple[str, dict]] = []
		self.lock = threading.Lock()
		self.namespace = f"/{live.site}"
		self.client = socketio.Client(reconnection=False)
		self.client.on("*", self._record, namespace=self.namespace)
		self.client.connect(
			f"http://127.0.0.1:{live.socketio_port}",
			namespaces=[self.namespace],
			transports=["polling"],
			headers={"Origin": live.url, "X-Frappe-Site-Name": live.site, "Cookie": f"sid={session.cookies['sid']}"},
			wait_timeout=10,
		)  # fmt: skip

	def _record(self, event, data=None):
		with self.lock:
			self.events.append((event, data if isinstance(data, dict) else {"data": data}))

	def emit(self, event, *args):
		self.client.emit(event, args if len(args) > 1 else args[0], namespace=self.namespace)

	def text(self) -> str:
		with self.lock:
			return json.dumps(self.events, default=str)

	def close(self):
		self.client.disconnect()


def test_realtime_broadcasts_reach_only_readers(live, world):
	outsider = RoomListener(live, world.sessions["b"])
	member = RoomListener(live, world.sessions["a"])
	try:
		for listener in (outsider, member):
			for doctype in ("Background Job", "Organization", "Job Execution Log"):
				listener.emit("doctype_subscribe", doctype)
			listener.emit("doc_subscribe", "Organization", world.org_a)
			listener.emit("doc_subscribe", "Background Job", world.job_a)
		time.sleep(1.5)

		job = helpers.submit_as(world.a, "demo_echo", {"later": world.secret}, organization=world.org_a)[
			"job_id"
		]
		world.markers_a.append(job)
		organization = frappe.get_doc("Organization", world.org_a)
		organization.save(ignore_permissions=True)  # a doc_update and, in Frappe, a list_update
		frappe.db.commit()
		helpers.run_burst_worker()

		deadline = time.monotonic() + 10
		while time.monotonic() < deadline and world.org_a not in member.text():
			time.sleep(0.2)
		assert (
			world.org_a in member.text()
		), f"the member got no update of their organization: {member.text()}"
		time.sleep(1)
		found = [marker for marker in world.markers_a if marker in outsider.text()]
		assert not found, f"a member of B received {found}: {outsider.text()[:500]}"
	finally:
		outsider.close()
		member.close()


def _answer(response, name: str) -> tuple[int, str]:
	body = response.json()
	messages = [json.loads(m).get("message", "") for m in json.loads(body.get("_server_messages") or "[]")]
	text = " ".join([*messages, body.get("exc_type", "")])
	return response.status_code, text.replace(name, "NAME")


def test_someone_elses_rows_answer_like_missing_ones(live, world):
	missing_org, missing_job = f"org-missing-{frappe.generate_hash(length=6)}", "JOB-2026-99999998"
	for who in OUTSIDERS:
		client = world.sessions[who]
		for doctype, foreign, missing in (
			("Organization", world.org_a, missing_org),
			("Background Job", world.job_a, missing_job),
		):
			via_resource = [
				_answer(client.get(f"{live.url}/api/resource/{doctype}/{name}", timeout=30), name)
				for name in (foreign, missing)
			]
			via_form = [
				_answer(
					call(live, world, who, "frappe.desk.form.load.getdoc", doctype=doctype, name=name), name
				)
				for name in (foreign, missing)
			]
			assert via_resource[0] == via_resource[1], f"{who} /api/resource/{doctype}: {via_resource}"
			assert via_form[0] == via_form[1], f"{who} getdoc {doctype}: {via_form}"
			assert via_resource[0][0] in (403, 404)
	# Writing a "like" onto someone else's job answers like a missing job and leaves no trace.
	comments = frappe.db.count("Comment", {"reference_name": world.job_a})
	likes = [
		_answer(call(live, world, "b", "frappe.desk.like.toggle_like", verb="POST", doctype="Background Job", name=name, add="Yes"), name)
		for name in (world.job_a, missing_job)
	]  # fmt: skip
	assert likes[0] == likes[1] and likes[0][0] == 404, likes
	frappe.db.rollback()
	assert frappe.db.count("Comment", {"reference_name": world.job_a}) == comments
	# and A's own member still reads them
	assert (
		world.secret in world.sessions["a"].get(f"{live.url}/api/resource/Background Job/{world.job_a}").text
	)


def test_workspace_number_cards_count_only_the_callers_jobs(live, world):
	for organization, member, count in ((world.org_a, world.a, 2), (world.org_b, world.b, 1)):
		for n in range(count):
			helpers.submit_as(member, "demo_echo", {"card": n}, organization=organization)
	helpers.drain_queues()  # no worker runs them: they stay Queued
	card = frappe.get_doc("Number Card", "Background Jobs Queued")
	args = {"doc": json.dumps(card.as_dict(), default=str), "filters": card.filters_json}
	frappe.db.rollback()
	for who, organizations in (("a", [world.org_a]), ("b", [world.org_b])):
		expected = frappe.db.count(
			"Background Job", {"status": "Queued", "organization": ("in", organizations)}
		)
		shown = message(
			call(
				live,
				world,
				who,
				"frappe.desk.doctype.number_card.number_card.get_result",
				verb="POST",
				**args,
			)
		)
		assert shown == expected, f"{who}: the Queued card shows {shown}, their organization has {expected}"  # fmt: skip
	everyone = frappe.db.count("Background Job", {"status": "Queued"})
	assert message(call(live, world, "manager", "frappe.desk.doctype.number_card.number_card.get_result", verb="POST", **args)) == everyone  # fmt: skip
	assert everyone >= 3 and everyone > frappe.db.count(
		"Background Job", {"status": "Queued", "organization": world.org_b}
	)
