"""Per-organization caps of running jobs: one organization runs at most N jobs at once, per Job
Type (``max_running_per_organization``) and per queue (Background Job Settings, Caps by Queue).

Contract:
- ``applies(queue, state)``: whether any cap may concern jobs of ``queue``; when none does, the
  claim pays nothing for caps.
- ``at_cap(job, queue, state)``: whether starting ``job`` (a Queued row with ``organization`` and
  ``job_type``) now would exceed a cap of its organization: its Running jobs in ``queue`` against
  the queue's cap, its Running jobs of that type against the type's. It holds a lock per
  organization until the caller's transaction ends, so two workers claiming for one organization
  count in turn and never both take its last slot (the claim commits at once; the count is a
  locking read, so it sees the other's committed claim). A Running row locked by the worker
  finishing it counts as running: the count never waits for a row lock while holding the
  organization's lock (that worker's next claim may wait for the organization's lock).
- A job held back by a cap stays Queued: the claim passes over it and gives the organization's
  turn away (``turns``). ``wake_after_running(rows)``: when jobs of an organization with a cap
  leave Running, a wake-up token is pushed for their queue if that organization has Queued jobs
  there, so its freed slot is used even when every earlier wake-up found it at its cap.
"""

import frappe
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import lock_waits, settings
from dartwing.dartwing_core.background_jobs.key_locks import hold_key_lock
from dartwing.dartwing_core.background_jobs.tokens import new_token_id, push_many


def _caps_for(queue: str | None, job_type: str | None, state: frappe._dict) -> tuple[int, int]:
	return cint(state.queue_caps.get(queue)), cint(state.job_type_caps.get(job_type))


def applies(queue: str, state: frappe._dict) -> bool:
	return bool(state.queue_caps.get(queue) or state.job_type_caps)


def at_cap(job: frappe._dict, queue: str, state: frappe._dict) -> bool:
	queue_cap, type_cap = _caps_for(queue, job.job_type, state)
	if not queue_cap and not type_cap:
		return False
	if not hold_key_lock(f"organization-cap:{job.organization}"):
		return True
	try:
		in_queue, of_type = frappe.db.sql(
			"""SELECT COALESCE(SUM(queue = %(queue)s), 0), COALESCE(SUM(job_type = %(job_type)s), 0)
			FROM `tabBackground Job` WHERE organization = %(organization)s AND status = 'Running'
			LOCK IN SHARE MODE NOWAIT""",
			{"queue": queue, "job_type": job.job_type, "organization": job.organization},
		)[0]
	except frappe.QueryTimeoutError as error:
		lock_waits.skip_held(error)
		# One of its Running jobs is being finished by a worker (which then takes the freed slot
		# itself, or wakes the queue): count it as running rather than wait for that worker while
		# holding the organization's lock, which that worker's next claim may be waiting for.
		return True
	return bool((queue_cap and in_queue >= queue_cap) or (type_cap and of_type >= type_cap))


def wake_after_running(rows) -> None:
	"""``rows`` (with ``queue``, ``job_type``, ``organization``) left Running."""
	state = settings.engine_state()
	if not (state.queue_caps or state.job_type_caps):
		return
	pushes = []
	for queue, organization in {
		(row.queue, row.organization) for row in rows if any(_caps_for(row.queue, row.job_type, state))
	}:
		waiting = frappe.db.sql_list(
			"""SELECT name FROM `tabBackground Job` WHERE status = 'Queued' AND queue = %s
			AND organization = %s LIMIT 1""",
			(queue, organization),
		)
		if waiting:
			pushes.append((waiting[0], queue, new_token_id(waiting[0])[0]))
	push_many(pushes)
