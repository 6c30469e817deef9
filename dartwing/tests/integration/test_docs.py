"""The README and docs/*.md run: every Python and curl block, in document order, against a running
site (``live``: web + Socket.IO), so an example cannot drift from the code (``doc_blocks`` says how
blocks are read). A document's file blocks make a throwaway app, installed before the first block
that needs it, and migrated when its hooks change afterwards, as a user would. Then a worker runs
the document's jobs, and every one of them must complete."""

import glob
import os
import subprocess

import frappe
import pytest
from frappe.utils import add_to_date, now_datetime

from dartwing.tests.integration import doc_blocks, helpers
from dartwing.tests.integration.throwaway_app import ThrowawayApp, bench, forget_cached_apps

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOCUMENTS = [
	"README.md",
	*sorted(os.path.relpath(p, REPOSITORY) for p in glob.glob(f"{REPOSITORY}/docs/*.md")),
]
DOCUMENTED_SITE = "http://dartwing.localhost:8000"
CURL_PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body -sS "$@"; echo; }\n'


def runnable(document: str) -> list[doc_blocks.Block]:
	return [b for b in doc_blocks.blocks(os.path.join(REPOSITORY, document)) if b.kind != "skipped"]


def test_the_readme_and_the_migration_guide_have_blocks_to_run():
	kinds = {document: {b.kind for b in runnable(document)} for document in DOCUMENTS}
	assert kinds["README.md"] == {"console", "curl", "file"}
	assert kinds["docs/MIGRATING.md"] == {"console", "file"}


def _names(doctype: str) -> set[str]:
	return set(frappe.get_all(doctype, pluck="name"))


def _run_console(document: str, block: doc_blocks.Block) -> None:
	frappe.set_user("Administrator")
	try:
		exec(compile(block.code, f"{document}:{block.line}", "exec"), {"frappe": frappe})
		frappe.db.commit()
	finally:
		frappe.db.rollback()
		frappe.set_user("Administrator")


def _run_curl(document: str, block: doc_blocks.Block, live, credentials: dict) -> None:
	script = CURL_PRELUDE + block.code.replace(DOCUMENTED_SITE, live.url)
	done = subprocess.run(
		["bash", "-c", script], env={**os.environ, **credentials}, capture_output=True, text=True, timeout=120
	)
	assert done.returncode == 0, f"{document}:{block.line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.fixture
def credentials():
	from frappe.core.doctype.user.user import generate_keys

	secret = generate_keys("Administrator")["api_secret"]
	frappe.db.commit()
	return {"API_KEY": frappe.db.get_value("User", "Administrator", "api_key"), "API_SECRET": secret}


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if runnable(d) and d != "docs/API.md"])
def test_every_python_and_curl_block_runs(document, live, credentials):
	started = add_to_date(now_datetime(), seconds=-1)
	before = {doctype: _names(doctype) for doctype in ("Organization", "Job Type", "Job Schedule")}
	app, changed, hooks_changed = None, False, False
	try:
		for block in runnable(document):
			if block.kind == "file":
				app = app or ThrowawayApp(block.app)
				assert app.name == block.app, f"{document}:{block.line}: one throwaway app per document"
				app.write(block.file, block.code)
				changed, hooks_changed = True, hooks_changed or block.file == "hooks.py"
				continue
			if changed:
				_apply(app, hooks_changed)
				changed = hooks_changed = False
			if block.kind == "console":
				_run_console(document, block)
			else:
				_run_curl(document, block, live, credentials)
		if changed:
			_apply(app, hooks_changed)

		assert helpers.run_burst_worker().returncode == 0
		frappe.db.rollback()
		jobs = frappe.get_all(
			"Background Job",
			filters={"creation": (">=", started)},
			fields=["name", "job_type", "status", "error_message"],
		)
		assert jobs, f"{document} made no job"
		assert [j for j in jobs if j.status != "Completed"] == []
	finally:
		frappe.db.rollback()
		new = {doctype: _names(doctype) - names for doctype, names in before.items()}
		for schedule in new["Job Schedule"]:
			frappe.delete_doc("Job Schedule", schedule, ignore_permissions=True, force=True)
		frappe.db.commit()
		helpers.delete_jobs({"creation": (">=", started)})
		if app:
			app.remove()
		for job_type in new["Job Type"]:
			if frappe.db.exists("Job Type", job_type):
				helpers.delete_job_type(job_type)
		for organization in new["Organization"]:
			helpers.cleanup_org(organization)


def _apply(app: ThrowawayApp, hooks_changed: bool) -> None:
	"""What a user does after writing app files: install the app, then migrate for new hooks."""
	if not app.installed:
		app.install()
	elif hooks_changed:
		bench("migrate")
	else:
		bench("clear-cache")
	forget_cached_apps()


def test_the_api_reference_runs(live, tmp_path):
	"""docs/API.md's curl calls, one shell session in document order, as its example user: a job
	manager logged in with the documented password; its example job ids stand for real jobs (a
	waiting one, a failed one, a completed one) and its Prometheus keys for that user's."""
	from frappe.core.doctype.user.user import generate_keys

	user = "someone@example.com"
	assert not frappe.db.exists("User", user), f"{user} exists on the test site"
	organization = helpers.make_org()
	try:
		helpers.make_user(user, roles=("Background Job Manager",))
		member = frappe.get_doc("Organization", organization)
		member.append("members", {"user": user})
		member.save(ignore_permissions=True)
		password = frappe.get_doc("User", user)
		password.new_password = "their password"
		password.flags.ignore_password_policy = True
		password.save(ignore_permissions=True)
		secret = generate_keys(user)["api_secret"]
		frappe.db.commit()
		failed = helpers.submit_as(user, "demo_fail", {"fail_times": 1, "error": "permanent"})["job_id"]
		completed = helpers.submit_as(user, "demo_echo", {"hello": "api"})["job_id"]
		assert helpers.run_burst_worker().returncode == 0
		waiting = helpers.submit_as(user, "demo_sleep", {"seconds": 60, "steps": 2}, run_at="2999-01-01")[
			"job_id"
		]
		ids = {"JOB-2026-00042": waiting, "JOB-2026-00040": failed, "JOB-2026-00041": completed}
		script = "\n".join(
			f"echo '--- docs/API.md:{block.line}'\n{block.code}" for block in runnable("docs/API.md")
		)
		for placeholder, job_id in ids.items():
			script = script.replace(placeholder, job_id)
		script = CURL_PRELUDE + script.replace(DOCUMENTED_SITE, live.url)
		done = subprocess.run(
			["bash", "-c", script],
			cwd=tmp_path,
			env={**os.environ, "KEY": frappe.db.get_value("User", user, "api_key"), "SECRET": secret},
			capture_output=True,
			text=True,
			timeout=180,
		)
		assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
		assert done.stdout.count("--- docs/API.md:") == len(runnable("docs/API.md"))
		assert '"deduplicated":false' in done.stdout.replace(" ", "")
		assert helpers.job(waiting).status == "Canceled"
		assert "dartwing_jobs_finished_total" in done.stdout
	finally:
		frappe.db.rollback()
		from dartwing.dartwing_core.background_jobs.pausing import resume

		resume(queue="long")
		frappe.db.commit()
		helpers.delete_jobs({"owner": user})
		helpers.cleanup_org(organization)
