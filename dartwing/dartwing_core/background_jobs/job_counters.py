"""Monotonic counters of finished jobs for Prometheus, kept in Redis (per site).

Contract: ``count_finished(job_type, status, run_time)`` is called once per move into a terminal
status, after the commit that makes it (``transitions``): it counts the job under (job type,
status) and, when it ran (``run_time`` not None), adds it to the job type's run-time histogram.
``snapshot()`` returns ``{"finished": {(job_type, status): n}, "run_time": {job_type: {"buckets":
{bound: n}, "count": n, "sum": s}}}``. Scrapes cost one Redis read however many jobs the table
holds. A Redis flush starts the counters from zero again, a counter reset that Prometheus handles.
"""

import time
from collections import Counter
from contextlib import contextmanager

import frappe

from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

# Run-time histogram bounds in seconds (cumulative, as Prometheus wants them).
RUN_TIME_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
_KEY = "dartwing:job_counters"
# Within ``batched()``, counts wait this long at most before they are sent.
BATCH_SECONDS = 1.0


def _key() -> str:
	return frappe.cache.make_key(_KEY)


def _increments(job_type: str, status: str, run_time: float | None) -> Counter:
	increments = Counter({f"finished|{job_type}|{status}": 1})
	if run_time is not None:
		for bound in RUN_TIME_BUCKETS:
			if run_time <= bound:
				increments[f"le|{job_type}|{bound}"] += 1
		increments[f"count|{job_type}"] += 1
		increments[f"sum|{job_type}"] += run_time
	return increments


def count_finished(job_type: str, status: str, run_time: float | None) -> None:
	batch = getattr(frappe.local, "dartwing_counter_batch", None)
	if batch is None:
		_send(_increments(job_type, status, run_time))
		return
	batch["increments"].update(_increments(job_type, status, run_time))
	if time.monotonic() - batch["sent_at"] >= BATCH_SECONDS:
		flush()


@contextmanager
def batched():
	"""Within (a draining work horse): counts are sent together, at least every ``BATCH_SECONDS``
	and when it ends. A work horse killed meanwhile loses the counts of its last second."""
	frappe.local.dartwing_counter_batch = {"increments": Counter(), "sent_at": time.monotonic()}
	try:
		yield
	finally:
		flush()
		frappe.local.dartwing_counter_batch = None


def flush() -> None:
	batch = getattr(frappe.local, "dartwing_counter_batch", None)
	if not batch:
		return
	increments, batch["increments"], batch["sent_at"] = batch["increments"], Counter(), time.monotonic()
	try:
		_send(increments)
	except Exception:
		# Counters are for monitoring: Redis being away must not fail the work horse.
		jobs_logger().warning({"event": "counter_update_failed", "fields": len(increments)})


def _send(increments: Counter) -> None:
	if not increments:
		return
	pipe = frappe.cache.pipeline()
	key = _key()
	for field, amount in increments.items():
		if field.startswith("sum|"):
			pipe.hincrbyfloat(key, field, amount)
		else:
			pipe.hincrby(key, field, amount)
	pipe.execute()


def snapshot() -> dict:
	finished, run_time = {}, {}
	pipe = frappe.cache.pipeline()  # the raw client: the key is already namespaced by _key()
	pipe.hgetall(_key())
	for field, value in (pipe.execute()[0] or {}).items():
		field = field.decode() if isinstance(field, bytes) else field
		kind, job_type, *rest = field.split("|")
		number = float(value)
		if kind == "finished":
			finished[(job_type, rest[0])] = int(number)
			continue
		histogram = run_time.setdefault(
			job_type, {"buckets": dict.fromkeys(RUN_TIME_BUCKETS, 0), "count": 0, "sum": 0.0}
		)
		if kind == "le":
			histogram["buckets"][float(rest[0]) if "." in rest[0] else int(rest[0])] = int(number)
		elif kind == "count":
			histogram["count"] = int(number)
		elif kind == "sum":
			histogram["sum"] = number
	return {"finished": finished, "run_time": run_time}
