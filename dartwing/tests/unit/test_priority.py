import random
from datetime import datetime, timedelta
from fractions import Fraction

import pytest

from dartwing.dartwing_core.background_jobs.priority import PRIORITY_RANK, claim_key, rank


def _standing(priority, waited: timedelta, aging) -> Fraction:
	"""rank + waited / aging, exactly (no float ties)."""
	return rank(priority) + Fraction(waited // timedelta(microseconds=1), 10**6 * aging)


def _standing_order(jobs, now, aging):
	"""Today's rule: highest standing first, the longest waiting first among equals."""
	return sorted(jobs, key=lambda job: (-_standing(job[1], now - job[2], aging), job[2]))


@pytest.mark.parametrize("aging", [1, 7, 120, 3600])
def test_the_key_orders_jobs_exactly_as_priority_with_aging(aging):
	rng = random.Random(aging)
	base = datetime(2026, 11, 30, 12, 0, 0)
	jobs = [
		(n, rng.choice(list(PRIORITY_RANK)), base - timedelta(seconds=rng.randrange(0, 6 * aging), milliseconds=rng.randrange(1000)))
		for n in range(400)
	]  # fmt: skip
	by_key = sorted(jobs, key=lambda job: (claim_key(job[2], job[1], aging), job[2]))
	for now in (base, base + timedelta(seconds=aging * 3.5), base + timedelta(days=2)):
		assert [job[0] for job in by_key] == [job[0] for job in _standing_order(jobs, now, aging)]


def test_a_low_job_overtakes_a_fresh_critical_one_after_three_agings():
	queued = datetime(2026, 1, 1)
	low = claim_key(queued, "Low", 60)
	assert low < claim_key(queued + timedelta(seconds=181), "Critical", 60)
	assert low > claim_key(queued + timedelta(seconds=179), "Critical", 60)
