"""The queue Redis's share of a transaction, sent in one round trip once the transaction commits.

Contract: ``add(command)`` registers ``command(pipe)``, which adds its commands to a pipeline on
the queue Redis (Frappe's realtime server listens there; RQ's tokens live there). All the commands
of one transaction go in one pipeline, sent after it commits, in the order they were added, and
are dropped on rollback. Redis being away loses them (logged), never the commit: they carry what
the database already holds (status events, removal of tokens nobody needs).
"""

from collections.abc import Callable

import frappe
from redis.exceptions import RedisError

from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger


def add(command: Callable) -> None:
	pending = getattr(frappe.local, "dartwing_after_commit_redis", None)
	if pending is None:
		pending = frappe.local.dartwing_after_commit_redis = []
		frappe.db.after_commit.add(_send)
		frappe.db.after_rollback.add(_drop)
	pending.append(command)


def _drop() -> None:
	frappe.local.dartwing_after_commit_redis = None


def _send() -> None:
	from frappe.utils.background_jobs import get_redis_connection_without_auth

	pending, frappe.local.dartwing_after_commit_redis = frappe.local.dartwing_after_commit_redis or [], None
	if not pending:
		return
	try:
		pipe = get_redis_connection_without_auth().pipeline(transaction=False)
		for command in pending:
			command(pipe)
		pipe.execute(raise_on_error=False)
	except RedisError as exc:
		jobs_logger().warning({"event": "after_commit_redis_failed", "error": repr(exc)[:300]})
