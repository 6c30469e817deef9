"""Named database locks that serialise counting the slots of a key (a concurrency key, an
organization's cap) until the transaction ends.

Contract: ``hold_key_lock(key)`` takes the lock ``key`` for this transaction (at once if it holds it
already; False after 10 s of waiting); it is released when the transaction commits or rolls back.
"""

import frappe
from frappe.utils import cint


def hold_key_lock(key: str) -> bool:
	"""Serialise slot counting for one concurrency key until this transaction ends."""
	held = frappe.local.flags.setdefault("dartwing_key_locks", set())
	if key in held:
		return True
	lock_name = f"dartwing-ck:{frappe.local.site}:{key}"[:64]
	if not cint(frappe.db.sql("SELECT GET_LOCK(%s, 10)", lock_name)[0][0]):
		return False
	if not held:
		frappe.db.after_commit.add(_release_key_locks)
		frappe.db.after_rollback.add(_release_key_locks)
	held.add(key)
	return True


def _release_key_locks():
	held = frappe.local.flags.pop("dartwing_key_locks", set())
	for key in held:
		frappe.db.sql("SELECT RELEASE_LOCK(%s)", f"dartwing-ck:{frappe.local.site}:{key}"[:64])
