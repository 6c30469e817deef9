"""Hostile input over real HTTP: property-based fuzzing of every method of the jobs API.

Wrong types, huge and nested JSON, unicode, dates with offsets, huge limits and negative offsets:
every answer must be a success or a clear 4xx (never a 5xx), and a refused submit must leave no
job behind. 500 examples per method, as a job manager (who reaches every code path).
"""

import json
import os
import string

import frappe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dartwing.dartwing_core.background_jobs.settings import paused_queues
from dartwing.tests.integration import helpers

EXAMPLES = int(os.environ.get("DARTWING_FUZZ_EXAMPLES", 500))
API = "dartwing.dartwing_core.api.jobs"

json_leaf = (
	st.none()
	| st.booleans()
	| st.integers(min_value=-(10**30), max_value=10**30)
	| st.floats(allow_nan=False, allow_infinity=False)
	| st.text(max_size=40)
)
json_value = st.recursive(
	json_leaf,
	lambda children: st.lists(children, max_size=6)
	| st.dictionaries(st.text(max_size=10), children, max_size=6),
	max_leaves=40,
)
dates = st.one_of(
	st.datetimes().map(lambda d: d.isoformat()),
	st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
	st.sampled_from(["2026-11-30T10:00:00Z", "2026-11-30 10:00:00+02:00", "0000-00-00", "9999-12-31 23:59:59", "now", ""]),
	st.text(max_size=30),
)  # fmt: skip
numbers = st.one_of(
	st.integers(min_value=-(10**20), max_value=10**20),
	st.sampled_from([-1, 0, 1, 100, 101, 10**9, -(10**9)]),
	st.text(alphabet=string.digits + "-.e", max_size=12),
)
huge = st.sampled_from(["x" * 200_000, json.dumps({"k": ["v" * 1000] * 200}), "[" * 5000 + "]" * 5000])


def anything(*extra):
	return st.one_of(json_value, huge, *extra)


def maybe(strategy):
	return st.one_of(st.just(None), strategy)


@pytest.fixture(scope="module")
def fuzz(live):
	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	organization = helpers.make_org(members=[manager])
	settings_doc = frappe.get_single("Background Job Settings")
	previous_limit = settings_doc.api_rate_limit_per_minute
	frappe.db.set_single_value("Background Job Settings", "api_rate_limit_per_minute", 0)
	frappe.db.commit()
	frappe.clear_cache(doctype="Background Job Settings")
	job = helpers.submit_as(manager, "demo_echo", {"seed": 1}, organization=organization)["job_id"]
	yield frappe._dict(session=live.session(manager), organization=organization, user=manager, job=job)
	frappe.db.set_single_value("Background Job Settings", "api_rate_limit_per_minute", previous_limit)
	frappe.db.commit()
	frappe.clear_cache(doctype="Background Job Settings")
	helpers.cleanup_org(organization)
	frappe.delete_doc("User", manager, ignore_permissions=True, force=True)
	frappe.db.commit()


def ask(live, fuzz, verb: str, method: str, params: dict):
	params = {key: value for key, value in params.items() if value is not None}
	url = f"{live.url}/api/method/{API}.{method}"
	if verb == "GET":
		encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
		response = fuzz.session.get(url, params=encoded, timeout=60)
	else:
		response = fuzz.session.post(url, json=params, timeout=60)
	assert (
		response.status_code < 500
	), f"{method}({str(params)[:300]}) -> {response.status_code}: {response.text[:600]}"
	if response.status_code in (413, 414, 431):
		return response  # refused by the HTTP server before Frappe: too large to read
	if response.status_code >= 400:
		body = response.text
		assert "exc_type" in body or "_server_messages" in body or "exception" in body, body[:300]
	return response


def job_count(organization: str) -> int:
	frappe.db.rollback()
	return frappe.db.count("Background Job", {"organization": organization})


FUZZ_SETTINGS = settings(
	max_examples=EXAMPLES,
	deadline=None,
	database=None,
	derandomize=True,
	suppress_health_check=[
		HealthCheck.too_slow,
		HealthCheck.data_too_large,
		HealthCheck.function_scoped_fixture,
	],
)
job_ids = st.one_of(st.sampled_from(["JOB-2026-00001", "", "JOB-%", "' OR 1=1 --"]), anything())


def test_submit_job(live, fuzz):
	@FUZZ_SETTINGS
	@given(
		job_type=st.one_of(st.sampled_from(["demo_echo", "demo_sleep", "nope", ""]), anything()),
		parameters=maybe(anything()),
		organization=maybe(st.one_of(st.just(fuzz.organization), anything())),
		priority=maybe(st.one_of(st.sampled_from(["Low", "High", "Urgent"]), anything())),
		depends_on=maybe(st.one_of(st.just(fuzz.job), st.lists(st.text(max_size=20), max_size=5), anything())),
		run_at=maybe(dates),
		reference_doctype=maybe(st.one_of(st.sampled_from(["User", "ToDo", "DocType", "Organization"]), anything())),
		reference_name=maybe(st.one_of(st.just(fuzz.user), anything())),
		strict=maybe(st.one_of(st.booleans(), anything())),
	)  # fmt: skip
	def run(**params):
		before = job_count(fuzz.organization)
		response = ask(live, fuzz, "POST", "submit_job", params)
		if response.status_code >= 400:
			assert job_count(fuzz.organization) == before, f"refused submit left a job: {str(params)[:300]}"

	run()


@pytest.mark.parametrize("method", ["get_job_status", "get_job_history"])
def test_reading_a_job(live, fuzz, method):
	@FUZZ_SETTINGS
	@given(job_id=st.one_of(st.just(fuzz.job), job_ids))
	def run(job_id):
		ask(live, fuzz, "GET", method, {"job_id": job_id})

	run()


def test_list_jobs(live, fuzz):
	@FUZZ_SETTINGS
	@given(
		status=maybe(st.one_of(st.sampled_from(["Queued", "Completed,Failed", "Nope"]), anything())),
		job_type=maybe(anything()),
		organization=maybe(anything()),
		from_date=maybe(dates),
		to_date=maybe(dates),
		limit=maybe(numbers),
		offset=maybe(numbers),
	)
	def run(**params):
		ask(live, fuzz, "GET", "list_jobs", params)

	run()


@pytest.mark.parametrize("method", ["cancel_job", "retry_job"])
def test_changing_a_job(live, fuzz, method):
	@FUZZ_SETTINGS
	@given(job_id=job_ids, parameters=maybe(anything()))
	def run(job_id, parameters):
		params = {"job_id": job_id}
		if method == "retry_job":
			params["parameters"] = parameters
		ask(live, fuzz, "POST", method, params)

	run()


def test_retry_jobs(live, fuzz):
	@FUZZ_SETTINGS
	@given(job_ids=st.one_of(st.lists(job_ids, max_size=8), anything()))
	def run(job_ids):
		ask(live, fuzz, "POST", "retry_jobs", {"job_ids": job_ids})

	run()


def test_metrics_and_stats(live, fuzz):
	@FUZZ_SETTINGS
	@given(
		organization=maybe(st.one_of(st.just(fuzz.organization), anything())),
		job_type=maybe(anything()),
		since=maybe(dates),
	)
	def run(**params):
		ask(live, fuzz, "GET", "get_job_metrics", params)

	run()


@pytest.mark.parametrize("method", ["get_queue_stats", "prometheus_metrics"])
def test_parameterless_reads(live, fuzz, method):
	@FUZZ_SETTINGS
	@given(
		extra=st.dictionaries(
			st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8), anything(), max_size=3
		)
	)
	def run(extra):
		ask(live, fuzz, "GET", method, extra)

	run()


@pytest.mark.parametrize("method", ["pause_queue", "resume_queue"])
def test_pausing(live, fuzz, method):
	# Names of the fuzz alone: a paused real queue would stall the rest of the suite.
	fuzzed_names = st.text(min_size=1, max_size=40).map(lambda name: f"fuzz-{name}")
	paused_before = paused_queues()

	@FUZZ_SETTINGS
	@given(
		queue=maybe(st.one_of(fuzzed_names, st.lists(st.text(max_size=5), max_size=3), st.integers())),
		job_type=maybe(st.one_of(fuzzed_names, st.just(""), st.dictionaries(st.text(max_size=3), st.text(max_size=3)))),
	)  # fmt: skip
	def run(**params):
		ask(live, fuzz, "POST", method, params)

	run()
	frappe.db.rollback()
	assert paused_queues() == paused_before
