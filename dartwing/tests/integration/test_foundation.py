"""The app on a real site: schema, indexes, roles, demo job types, append-only log, atomic transitions."""

import threading

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.api_errors import InvalidTransitionError, UnknownHandlerError
from dartwing.dartwing_core.background_jobs.transitions import transition
from dartwing.tests.integration import helpers


def _indexes(table: str) -> dict[str, list[str]]:
	found: dict[str, list[str]] = {}
	for row in frappe.db.sql(f"SHOW INDEX FROM `{table}`", as_dict=True):
		found.setdefault(row.Key_name, []).append(row.Column_name)
	return found


def test_hot_queries_have_real_indexes():
	job_indexes = list(_indexes("tabBackground Job").values())
	for columns in (
		["dedup_key"],
		["parameters_hash"],
		["status", "next_retry_utc"],
		["status", "run_at_utc"],
		["organization", "status", "creation"],
		["status", "queue", "claim_order", "queued_at"],
		["status", "name"],
		["concurrency_key", "status"],
	):
		assert columns in job_indexes, columns
	unique = [
		row
		for row in frappe.db.sql("SHOW INDEX FROM `tabBackground Job`", as_dict=True)
		if row.Column_name == "dedup_key"
	]
	assert unique and unique[0].Non_unique == 0
	assert ["depends_on"] in _indexes("tabBackground Job Dependency").values()
	assert ["job", "timestamp"] in _indexes("tabJob Execution Log").values()


def test_a_status_move_does_not_update_a_second_index_on_modified():
	"""Frappe's plain index on ``modified`` is dropped (on install, and by the patch on older sites):
	list views sorted by ``modified`` read ``(modified, creation)`` instead."""
	from dartwing.patches.v0_3 import drop_plain_modified_index

	assert ["modified"] not in _indexes("tabBackground Job").values(), "kept at install or migrate"
	frappe.db.sql_ddl("ALTER TABLE `tabBackground Job` ADD INDEX `modified` (`modified`)")
	assert ["modified"] in _indexes("tabBackground Job").values()
	drop_plain_modified_index.execute()
	drop_plain_modified_index.execute()
	indexes = _indexes("tabBackground Job")
	assert ["modified"] not in indexes.values() and ["modified", "creation"] in indexes.values()
	plan = frappe.db.sql(
		"EXPLAIN SELECT name FROM `tabBackground Job` ORDER BY modified DESC LIMIT 20", as_dict=True
	)
	assert plan[0].key == "modified_creation_index", plan


def test_the_jobs_log_rotates_at_its_own_size_in_the_bench_and_the_site():
	"""A drain writes two lines a job: Frappe's default files (100 KB) would rotate every ~200 jobs."""
	from logging.handlers import RotatingFileHandler

	from dartwing.dartwing_core.background_jobs.jobs_logger import LOG_FILE_BYTES, LOG_FILE_COUNT, jobs_logger

	files = [handler for handler in jobs_logger().handlers if isinstance(handler, RotatingFileHandler)]
	assert len(files) == 2  # logs/ of the bench and of the site
	assert {(handler.maxBytes, handler.backupCount) for handler in files} == {
		(LOG_FILE_BYTES, LOG_FILE_COUNT)
	}


def test_roles_demo_job_types_and_idempotent_install():
	from dartwing import install

	for role in install.ROLES:
		assert frappe.db.exists("Role", role)
	for name in ("demo_sleep", "demo_echo", "demo_fail"):
		assert frappe.db.get_value("Job Type", name, "handler") == name
	frappe.db.set_value("Job Type", "demo_echo", "title", "Edited by the site")
	install.after_migrate()
	install.after_migrate()
	assert frappe.db.get_value("Job Type", "demo_echo", "title") == "Edited by the site"
	assert frappe.db.count("Job Type", {"handler": "demo_echo", "name": "demo_echo"}) == 1
	frappe.db.rollback()


def test_job_type_refuses_an_unregistered_handler(job_type_factory):
	with pytest.raises(UnknownHandlerError, match="not registered"):
		job_type_factory(handler="os.system")
	with pytest.raises(frappe.ValidationError, match="not a queue"):
		job_type_factory(queue="no-such-queue")
	with pytest.raises(frappe.ValidationError, match="Backoff"):
		job_type_factory(backoff_strategy="Schedule", backoff_schedule="1,x")
	frappe.db.rollback()


def test_execution_log_cannot_be_created_or_edited_by_hand(org):
	result = helpers.submit_as(org.user, "demo_echo", {"x": 1})
	with pytest.raises(frappe.PermissionError):
		frappe.get_doc(
			{"doctype": "Job Execution Log", "job": result["job_id"], "event": "Completed"}
		).insert(ignore_permissions=True)
	log = frappe.get_doc("Job Execution Log", {"job": result["job_id"]})
	log.message = "tampered"
	with pytest.raises(frappe.PermissionError):
		log.save(ignore_permissions=True)
	frappe.db.rollback()
	assert not frappe.get_all("Job Execution Log", filters={"message": "tampered"})


def test_illegal_transition_is_refused_and_writes_nothing(org):
	job = helpers.submit_as(org.user, "demo_echo", {"x": 2})["job_id"]
	logs_before = helpers.events(job)
	with pytest.raises(InvalidTransitionError, match="cannot become Completed"):
		transition(job, states.COMPLETED)
	frappe.db.rollback()
	assert helpers.job(job).status == states.QUEUED
	assert helpers.events(job) == logs_before


def test_two_connections_race_for_one_transition_and_exactly_one_wins(org):
	job = helpers.submit_as(org.user, "demo_echo", {"race": 1})["job_id"]
	site, sites_path = frappe.local.site, helpers.SITES_PATH
	barrier = threading.Barrier(2)
	outcomes = []

	def contender(name):
		frappe.init(site=site, sites_path=sites_path)
		frappe.connect()
		try:
			barrier.wait()
			moved = transition(
				job,
				states.RUNNING,
				expect={states.QUEUED},
				worker=name,
				values={"worker": name, "attempt": 1},
			)
			frappe.db.commit()
			outcomes.append((name, bool(moved)))
		finally:
			frappe.destroy()

	threads = [threading.Thread(target=contender, args=(f"contender-{i}",)) for i in range(2)]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join()

	assert sorted(won for _, won in outcomes) == [False, True]
	winner = next(name for name, won in outcomes if won)
	row = helpers.job(job)
	assert row.status == states.RUNNING and row.worker == winner
	assert helpers.events(job).count("Started") == 1
