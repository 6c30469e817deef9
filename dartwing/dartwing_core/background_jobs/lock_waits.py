"""Statements that never wait for a row lock.

Contract: ``NO_WAIT`` prefixed to a statement (MariaDB's ``SET STATEMENT ... FOR``) makes it fail at
once with ``frappe.QueryTimeoutError`` where another transaction holds a row it needs, instead of
waiting (a locking read says ``NOWAIT`` for the same). The caller then treats the row as taken,
after ``skip_held(error)`` in its ``except``: it re-raises when the server undoes the whole
transaction on a lock wait timeout (``innodb_rollback_on_timeout`` ON; by default only the
statement is undone), since the caller's earlier writes are then gone and must not be taken as
still pending.
"""

import frappe

NO_WAIT = "SET STATEMENT innodb_lock_wait_timeout = 0 FOR "

# Per site (its server's setting, read once per process).
_undoes_transaction: dict[str, bool] = {}


def skip_held(error: Exception) -> None:
	site = frappe.local.site
	if site not in _undoes_transaction:
		_undoes_transaction[site] = bool(frappe.db.sql("SELECT @@innodb_rollback_on_timeout")[0][0])
	if _undoes_transaction[site]:
		raise error
