"""Engine settings, read from the ``Background Job Settings`` single with safe defaults.

Contract: ``get_settings()`` returns a plain object with every tunable; ``paused_queues()``,
``paused_job_types()`` and ``suspended_organizations()`` are sets. All four come from one cached
snapshot (Redis, never a process-local copy) that lives at most ``STATE_TTL_SECONDS``, and that
``clear_engine_cache()`` drops at once *and* again after the transaction commits: a reader that
rebuilt it from the old rows between the two cannot keep the old state past the commit.
The owning doctypes call it on save; so do pause / resume / suspend. ``engine_state()`` gives
all four, and the per-organization caps of running jobs (``job_type_caps``, ``queue_caps``:
``organization_caps``), from one read (the claim's hot path).

Within ``read_once()`` (a draining work horse, around its claims, runs and outcomes) the
snapshot is read from Redis once and reused for up to ``READ_ONCE_SECONDS``: a draining horse sees
a change made elsewhere within that time (pausing or suspending also moves the Queued jobs out of
reach in the same commit, so nothing depends on this copy to hold work back);
``clear_engine_cache()`` drops that copy too. ``job_type(name)`` is the Job Type document; within
``drain_scope()`` (one work horse's drain, a few seconds) it is read once per snapshot (a saved Job
Type drops the snapshot, so the next read sees the change) instead of once per job.
"""

import time
from contextlib import contextmanager

import frappe
from frappe.utils import cint, flt

from dartwing.dartwing_core.background_jobs.priority import DEFAULT_AGING_SECONDS

SETTINGS_DOCTYPE = "Background Job Settings"
_CACHE_KEY = "dartwing:engine_state"
STATE_TTL_SECONDS = 5
# How long ``read_once`` reuses the snapshot it read.
READ_ONCE_SECONDS = 1.0

DEFAULTS = {
	"retention_days": 30,
	"retention_batch_size": 1000,
	"max_parameters_kb": 64,
	"api_rate_limit_per_minute": 600,
	"heartbeat_interval_seconds": 5.0,
	"stale_heartbeat_seconds": 30,
	"cancel_grace_seconds": 1.0,
	"shutdown_grace_seconds": 20.0,
	"max_recoveries": 3,
	"aging_seconds": DEFAULT_AGING_SECONDS,
	"fair_share": 1,
}


def get_settings() -> frappe._dict:
	return frappe._dict(_engine_state()["settings"])


def _read_settings() -> dict:
	values = dict(DEFAULTS)
	stored = frappe.db.get_singles_dict(SETTINGS_DOCTYPE)
	for key, default in DEFAULTS.items():
		value = stored.get(key)
		if value in (None, ""):
			continue
		values[key] = flt(value) if isinstance(default, float) else cint(value)
	return values


def _engine_state() -> dict:
	pinned = getattr(frappe.local, "dartwing_engine_state", None)
	if pinned is not None and time.monotonic() - pinned[0] < READ_ONCE_SECONDS:
		return pinned[1]
	state = frappe.cache.get_value(_CACHE_KEY, expires=True)
	if state is None:
		state = _read_state()
		frappe.cache.set_value(_CACHE_KEY, state, expires_in_sec=STATE_TTL_SECONDS)
	if getattr(frappe.local, "dartwing_read_once", False):
		frappe.local.dartwing_engine_state = (time.monotonic(), state)
	return state


def _read_state() -> dict:
	"""The snapshot from the tables, in plain queries: a work horse that rebuilds it does not load
	Frappe's list query machinery (``frappe.get_all`` imports ``frappe.boot``, ~90 ms)."""
	return {
		"version": frappe.generate_hash(length=12),
		"settings": _read_settings(),
		"paused_queues": sorted(
			set(
				frappe.db.sql_list(
					"SELECT queue FROM `tabPaused Queue` WHERE parenttype = %s", SETTINGS_DOCTYPE
				)
			)
		),
		"paused_job_types": frappe.db.sql_list("SELECT name FROM `tabJob Type` WHERE paused = 1"),
		"suspended_organizations": frappe.db.sql_list(
			"SELECT name FROM `tabOrganization` WHERE status = 'Suspended'"
		),
		"job_type_caps": dict(
			frappe.db.sql(
				"""SELECT name, max_running_per_organization FROM `tabJob Type`
				WHERE max_running_per_organization > 0"""
			)
		),
		"queue_caps": dict(
			frappe.db.sql(
				"""SELECT queue, max_running_per_organization FROM `tabQueue Organization Cap`
				WHERE parenttype = %s AND max_running_per_organization > 0""",
				SETTINGS_DOCTYPE,
			)
		),
	}


@contextmanager
def read_once():
	"""Within: the engine state snapshot is read from Redis at most once every ``READ_ONCE_SECONDS``
	(a drain's next claims reuse it; a long handler's outcome, or its own submits, read it again)."""
	frappe.local.dartwing_read_once, frappe.local.dartwing_engine_state = True, None
	try:
		yield
	finally:
		frappe.local.dartwing_read_once, frappe.local.dartwing_engine_state = False, None


@contextmanager
def drain_scope():
	"""Within: ``job_type`` keeps the Job Types it read for as long as the snapshot stays the same."""
	frappe.local.dartwing_job_types = {}
	try:
		yield
	finally:
		frappe.local.dartwing_job_types = None


def job_type(name: str):
	kept = getattr(frappe.local, "dartwing_job_types", None)
	if kept is None:
		return frappe.get_cached_doc("Job Type", name)
	version = _engine_state().get("version")
	found = kept.get(name)
	if found is None or found[0] != version:
		found = kept[name] = (version, frappe.get_cached_doc("Job Type", name))
	return found[1]


def engine_state() -> frappe._dict:
	"""Settings and what is held back, from one read of the snapshot (for hot paths)."""
	state = _engine_state()
	return frappe._dict(
		settings=frappe._dict(state["settings"]),
		paused_queues=set(state["paused_queues"]),
		paused_job_types=set(state["paused_job_types"]),
		suspended_organizations=set(state["suspended_organizations"]),
		job_type_caps=state.get("job_type_caps", {}),
		queue_caps=state.get("queue_caps", {}),
	)


def paused_queues() -> set[str]:
	return set(_engine_state()["paused_queues"])


def paused_job_types() -> set[str]:
	return set(_engine_state()["paused_job_types"])


def suspended_organizations() -> set[str]:
	return set(_engine_state()["suspended_organizations"])


def clear_engine_cache() -> None:
	_drop_cached_state()
	frappe.db.after_commit.add(_drop_cached_state)


def _drop_cached_state() -> None:
	frappe.local.dartwing_engine_state = None
	frappe.cache.delete_value(_CACHE_KEY)
	frappe.clear_document_cache(SETTINGS_DOCTYPE, SETTINGS_DOCTYPE)
