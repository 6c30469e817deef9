"""Which queued job a worker takes next: priority with aging, as one key an index can order.

Contract: a queued job's standing is ``rank(priority) + age / aging_seconds`` (Low 0, Normal 1,
High 2, Critical 3: a job gains a level every ``aging_seconds`` it waits, so Low never starves),
the highest first, the longest waiting first among equals. For any two jobs and any moment,

	rank_a + (now - queued_a) / aging  >  rank_b + (now - queued_b) / aging
	  <=>  queued_a - rank_a * aging  <  queued_b - rank_b * aging

so ``claim_key(queued_at_utc, priority, aging_seconds)`` (seconds since the epoch, less the rank
times the aging) orders jobs exactly as their standing does, at every moment, without depending
on ``now``. ``transitions`` stores it on the row in the same UPDATE that queues the job, and
``submit`` in the INSERT of a job queued at once (``claim_order_sql``: the row's priority, the
aging read from the settings row, so the hot path needs no settings lookup), and the claim reads
``ORDER BY claim_order, queued_at`` from an index, whatever the backlog. When ``aging_seconds``
changes, ``rekey_sql`` moves every queued key by ``rank * (old - new)``, which is exact.

This module imports nothing from Frappe.
"""

from datetime import datetime, timedelta
from decimal import Decimal

PRIORITY_RANK = {"Low": 0, "Normal": 1, "High": 2, "Critical": 3}
PRIORITY_SQL = "(CASE priority WHEN 'Critical' THEN 3 WHEN 'High' THEN 2 WHEN 'Normal' THEN 1 ELSE 0 END)"
EPOCH = datetime(1970, 1, 1)


def rank(priority: str | None) -> int:
	return PRIORITY_RANK.get(priority or "Normal", 0)


DEFAULT_AGING_SECONDS = 120
_AGING_SQL = (
	"GREATEST(1, COALESCE((SELECT CAST(`value` AS SIGNED) FROM `tabSingles` "
	"WHERE `doctype` = 'Background Job Settings' AND `field` = 'aging_seconds'), "
	f"{DEFAULT_AGING_SECONDS}))"
)


def claim_order_sql(queued_epoch: str, rank_sql: str = PRIORITY_SQL) -> str:
	"""``claim_key`` in SQL: ``queued_epoch`` is ``epoch_seconds(queued_at_utc)`` (a placeholder), the
	rank the row's own priority unless given, the aging read from the settings row."""
	return f"{queued_epoch} - {rank_sql} * {_AGING_SQL}"


def epoch_seconds(moment_utc: datetime) -> Decimal:
	"""Exact to the microsecond (a Decimal, as the column stores it)."""
	return Decimal((moment_utc - EPOCH) // timedelta(microseconds=1)).scaleb(-6)


def claim_key(queued_at_utc: datetime, priority: str | None, aging_seconds: int) -> Decimal:
	return epoch_seconds(queued_at_utc) - rank(priority) * max(aging_seconds, 1)


def rekey_sql(old_aging: int, new_aging: int) -> str:
	"""SET clause moving the keys of queued rows from one aging to another."""
	delta = max(old_aging, 1) - max(new_aging, 1)
	return f"claim_order = claim_order + {PRIORITY_SQL} * {int(delta)}"
