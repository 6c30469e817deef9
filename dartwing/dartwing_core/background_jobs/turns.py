"""Fair share within a queue: the organizations with Queued work take turns.

Contract (the rule the claim follows, ``claiming``):
- A queue's Queued jobs form one *line* per priority level. Which line is served next is decided
  by priority with aging exactly as before (``priority``): the line holding the queue's best job
  by ``claim_order``. Priority therefore still rules across levels: a Critical job of an
  organization flooding the queue starts before a Normal job of another organization (until the
  Normal one has aged past it, ``aging_seconds`` per level, as before).
- Within the chosen line the organizations take turns: the one served least recently (in that
  queue and at that level) goes next, with its own best job by ``claim_order``. An organization
  that starts queuing in a line joins it as if served at that moment, so a flood of one
  organization delays another's next job by at most one job per organization with work in that
  line, not by the flood. With one organization in a line the order is exactly that of
  ``claim_order`` (the same as without turns).
- The state is one small row per (queue, priority, organization) (``Background Job Turn``):
  ``waiting`` (it may have Queued jobs there) and ``last_served_at``. Queuing a job marks its row
  waiting (``note_queued``, called by ``transitions`` for every move to Queued, and for a job
  inserted as Queued); the claim reads the least recently served waiting rows from an index
  (``next_in_line``), then the best jobs of the first one's organization (none to read when it
  is the organization of the queue's best job, which the claim read already), and marks the one
  it served (``mark_served``: it stays waiting only while that organization has another Queued
  job in the line); a row found with nothing Queued is cleared (``mark_idle``), as is the row of a
  job leaving Queued otherwise, canceled or held back (``note_left``, from ``transitions``).
  Nothing here reads or sorts the backlog: each step is one index lookup, whatever the number of
  Queued jobs or organizations.
- In a drain (``sole_lines_remembered``, one work horse claiming job after job) a line found with
  one organization waiting, the one whose jobs the claim takes, is not read again for the next
  ``SOLE_RECHECK_CLAIMS`` - 1 claims of that organization there: an organization that starts
  queuing in it meanwhile waits at most that many of the drained organization's jobs more.
- A row cleared while a job of it was being queued in a transaction the claim could not see yet is
  set waiting again by ``repair`` (upkeep, every few seconds); until then that job still runs in
  ``claim_order``'s place. Turns are bookkeeping for fairness: no job depends on them to run.
"""

from contextlib import contextmanager

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs.claim_indexes import ORGANIZATION_CLAIM_INDEX

TURN_DOCTYPE = "Background Job Turn"
TURN_TABLE = f"`tab{TURN_DOCTYPE}`"
# Least recently served organizations the claim looks at in one line before it falls back to the
# line's best job: rows whose jobs are all held back (a paused job type) are passed over.
TURNS_LOOKED_AT = 4


def _lane(queue: str | None, priority: str | None, organization: str | None) -> tuple[str, str, str]:
	return (queue or "default", priority or "Normal", organization or "")


def note_queued(jobs) -> None:
	"""Mark the lines of ``jobs`` (rows with ``queue``, ``priority``, ``organization``) as waiting.

	A plain read first: in a flood the row is already waiting and nothing is written (no lock
	taken on the hot submit path); a row that is not is inserted or set waiting."""
	lanes = {_lane(job.queue, job.priority, job.organization) for job in jobs}
	if not lanes:
		return
	known = _waiting_lanes(lanes)
	_set_waiting(sorted(lanes - known))


def _waiting_lanes(lanes: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
	if len(lanes) == 1:
		(lane,) = lanes
		waiting = frappe.db.sql(
			f"""SELECT waiting FROM {TURN_TABLE}
			WHERE queue = %s AND priority = %s AND organization = %s""",
			lane,
		)
		return {lane} if waiting and waiting[0][0] else set()
	found = set()
	lanes = sorted(lanes)
	for start in range(0, len(lanes), 500):
		chunk = lanes[start : start + 500]
		found.update(
			tuple(row)
			for row in frappe.db.sql(
				f"""SELECT queue, priority, organization FROM {TURN_TABLE}
				WHERE waiting = 1 AND (queue, priority, organization) IN %(lanes)s""",
				{"lanes": tuple(chunk)},
			)
		)
	return found


def _set_waiting(lanes: list[tuple[str, str, str]], served_at=None) -> None:
	"""Insert the rows of ``lanes`` (joining their line now, or ``served_at``) or set them waiting;
	with ``served_at``, existing rows are marked served then too."""
	if not lanes:
		return
	now = now_datetime()
	joined = served_at or now
	on_duplicate = "waiting = 1" + (", last_served_at = VALUES(last_served_at)" if served_at else "")
	for start in range(0, len(lanes), 500):
		chunk = lanes[start : start + 500]
		frappe.db.sql(
			f"""INSERT INTO {TURN_TABLE}
			(name, creation, modified, owner, modified_by, docstatus, idx,
				queue, priority, organization, waiting, last_served_at)
			VALUES {", ".join(["(%s, %s, %s, 'Administrator', 'Administrator', 0, 0, %s, %s, %s, 1, %s)"] * len(chunk))}
			ON DUPLICATE KEY UPDATE {on_duplicate}""",
			[
				value
				for queue, priority, organization in chunk
				for value in (
					frappe.generate_hash(length=10),
					now,
					now,
					queue,
					priority,
					organization,
					joined,
				)
			],
		)


# Whether a row's organization has Queued jobs in its line (one entry of the claim's index).
_HAS_QUEUED = f"""EXISTS (SELECT 1 FROM `tabBackground Job` job FORCE INDEX ({ORGANIZATION_CLAIM_INDEX})
	WHERE job.status = 'Queued' AND job.queue = turn.queue AND job.organization = turn.organization
		AND job.priority = turn.priority)"""


# How often, in claims, a draining horse reads again a line where one organization waits alone.
SOLE_RECHECK_CLAIMS = 4


@contextmanager
def sole_lines_remembered():
	"""Within (a draining work horse): ``waiting_in_line`` remembers lines found with one
	organization waiting for ``SOLE_RECHECK_CLAIMS`` claims."""
	frappe.local.dartwing_sole_lines = {}
	try:
		yield
	finally:
		frappe.local.dartwing_sole_lines = None


def waiting_in_line(
	queue: str, priority: str, organization: str | None, skip_organizations=()
) -> list[frappe._dict]:
	"""``next_in_line`` for a claim whose best job is ``organization``'s, except that within
	``sole_lines_remembered`` a line just found with that organization waiting alone is taken to
	be so for its next ``SOLE_RECHECK_CLAIMS`` - 1 claims, without a read."""
	remembered = getattr(frappe.local, "dartwing_sole_lines", None)
	if remembered is None:
		return next_in_line(queue, priority, skip_organizations)
	lane = _lane(queue, priority, organization)
	known = remembered.get(lane)
	if known and known.claims_left > 0:
		known.claims_left -= 1
		return [known.row]
	waiting = next_in_line(queue, priority, skip_organizations)
	if len(waiting) == 1 and waiting[0].organization == lane[2]:
		remembered[lane] = frappe._dict(row=waiting[0], claims_left=SOLE_RECHECK_CLAIMS - 1)
	else:
		remembered.pop(lane, None)
	return waiting


def next_in_line(queue: str, priority: str, skip_organizations=()) -> list[frappe._dict]:
	"""The least recently served rows of one line (``name``, ``organization``), up to
	``TURNS_LOOKED_AT`` of them, leaving out ``skip_organizations``. A row may still be marked
	waiting with nothing Queued (its jobs were deleted, or a race): the claim, which reads the
	organization's jobs anyway, clears it then (``mark_idle``)."""
	rows = frappe.db.sql(
		f"""SELECT turn.name, turn.organization
		FROM {TURN_TABLE} turn FORCE INDEX (queue_priority_waiting_last_served_at_index)
		WHERE turn.queue = %(queue)s AND turn.priority = %(priority)s AND turn.waiting = 1
		ORDER BY turn.last_served_at ASC LIMIT {TURNS_LOOKED_AT + len(skip_organizations)}""",
		{"queue": queue, "priority": priority},
		as_dict=True,
	)
	return [row for row in rows if row.organization not in skip_organizations][:TURNS_LOOKED_AT]


def mark_served(turn: frappe._dict | None, job: frappe._dict) -> None:
	"""The organization of ``job`` (just claimed) was served now in its line. ``turn``, when the
	claim read the organization's row, is that row's ``name`` with ``sole`` (the only row waiting
	in the line: its place in the order does not matter, nothing is written while it keeps
	waiting) and ``more`` (another of its jobs waits there: True, False, or None for unknown,
	then looked up). Without ``turn`` the row is found, or made, by its key."""
	now = now_datetime()
	if not turn:
		_set_waiting([_lane(job.queue, job.priority, job.organization)], served_at=now)
	elif turn.more and turn.sole:
		return
	elif turn.more:
		frappe.db.sql(f"UPDATE {TURN_TABLE} SET last_served_at = %s WHERE name = %s", (now, turn.name))
	else:
		frappe.db.sql(
			f"""UPDATE {TURN_TABLE} turn SET turn.last_served_at = %(now)s, turn.waiting = {_HAS_QUEUED}
			WHERE turn.name = %(turn)s""",
			{"now": now, "turn": turn.name},
		)


def mark_idle(names: list[str]) -> None:
	"""Clear ``waiting`` on the rows ``names`` whose organization has no Queued job left in its line."""
	if names:
		frappe.db.sql(
			f"UPDATE {TURN_TABLE} turn SET turn.waiting = 0 WHERE turn.name IN %s AND NOT {_HAS_QUEUED}",
			(tuple(names),),
		)


def note_left(jobs) -> None:
	"""``jobs`` (rows with ``queue``, ``priority``, ``organization``) left Queued other than by a
	claim (canceled, held back to Pending): clear their rows if nothing else waits there."""
	lanes = {_lane(job.queue, job.priority, job.organization) for job in jobs}
	names = []
	for queue, priority, organization in lanes:
		names += frappe.db.sql_list(
			f"""SELECT name FROM {TURN_TABLE} WHERE queue = %s AND priority = %s AND organization = %s
			AND waiting = 1""",
			(queue, priority, organization),
		)
	mark_idle(names)


def repair() -> int:
	"""Make every row's ``waiting`` say whether its organization has Queued jobs in its line: set
	it where a race left it cleared while a job was being queued, clear it where the jobs went
	another way (deleted, canceled, paused back to Pending). Reads the distinct lines of the
	Queued jobs from an index (one entry per line, not per job). Returns how many rows changed."""
	queued = {
		_lane(*row)
		for row in frappe.db.sql(
			"""SELECT DISTINCT queue, priority, organization FROM `tabBackground Job`
			WHERE status = 'Queued'"""
		)
	}
	waiting = {
		(row.queue, row.priority, row.organization): row.name
		for row in frappe.db.sql(
			f"SELECT name, queue, priority, organization FROM {TURN_TABLE} WHERE waiting = 1", as_dict=True
		)
	}
	missing = sorted(queued - set(waiting))
	_set_waiting(missing)
	idle = sorted(name for lane, name in waiting.items() if lane not in queued)
	for start in range(0, len(idle), 500):
		mark_idle(idle[start : start + 500])
	return len(missing) + len(idle)
