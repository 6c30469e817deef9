"""Locking reads that never wait for a row lock.

Contract: a locking read that says ``NOWAIT`` fails at once with ``frappe.QueryTimeoutError`` where
another transaction holds a row it needs, instead of waiting; the caller then treats the row as
taken, after ``skip_held(error)`` in its ``except``: it re-raises when the server undoes the whole
transaction on a lock wait timeout (``innodb_rollback_on_timeout`` ON; by default only the
statement is undone), since the caller's earlier writes are then gone and must not be taken as
still pending.
"""

import frappe

# Per site (its server's setting, read once per process).
_undoes_transaction: dict[str, bool] = {}


def skip_held(error: Exception) -> None:
	site = frappe.local.site
	if site not in _undoes_transaction:
		_undoes_transaction[site] = bool(frappe.db.sql("SELECT @@innodb_rollback_on_timeout")[0][0])
	if _undoes_transaction[site]:
		raise error
