"""Engine settings, read from the ``Background Job Settings`` single with safe defaults.

Contract: ``get_settings()`` returns a plain object with every tunable; ``paused_queues()``,
``paused_job_types()`` and ``suspended_organizations()`` are cached sets that the owning
doctypes clear on save (``clear_engine_cache``).
"""

import frappe
from frappe.utils import cint, flt

SETTINGS_DOCTYPE = "Background Job Settings"
_CACHE_KEY = "dartwing:engine_state"

DEFAULTS = {
	"retention_days": 30,
	"retention_batch_size": 1000,
	"max_parameters_kb": 64,
	"api_rate_limit_per_minute": 600,
	"heartbeat_interval_seconds": 5.0,
	"stale_heartbeat_seconds": 30,
	"cancel_grace_seconds": 1.0,
	"aging_seconds": 120,
}


def get_settings() -> frappe._dict:
	values = frappe._dict(DEFAULTS)
	stored = frappe.get_cached_doc(SETTINGS_DOCTYPE)
	for key, default in DEFAULTS.items():
		value = stored.get(key)
		if value in (None, ""):
			continue
		values[key] = flt(value) if isinstance(default, float) else cint(value)
	return values


def _engine_state() -> dict:
	state = frappe.cache.get_value(_CACHE_KEY)
	if state is None:
		state = {
			"paused_queues": sorted(
				{
					row.queue
					for row in frappe.get_all(
						"Paused Queue", filters={"parenttype": SETTINGS_DOCTYPE}, fields=["queue"]
					)
				}
			),
			"paused_job_types": frappe.get_all("Job Type", filters={"paused": 1}, pluck="name"),
			"suspended_organizations": frappe.get_all(
				"Organization", filters={"status": "Suspended"}, pluck="name"
			),
		}
		frappe.cache.set_value(_CACHE_KEY, state)
	return state


def paused_queues() -> set[str]:
	return set(_engine_state()["paused_queues"])


def paused_job_types() -> set[str]:
	return set(_engine_state()["paused_job_types"])


def suspended_organizations() -> set[str]:
	return set(_engine_state()["suspended_organizations"])


def clear_engine_cache() -> None:
	frappe.cache.delete_value(_CACHE_KEY)
	frappe.clear_document_cache(SETTINGS_DOCTYPE, SETTINGS_DOCTYPE)
