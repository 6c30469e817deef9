"""Percentiles from log-scale histograms, so metrics need only SQL ``GROUP BY`` counts.

Contract (no Frappe here): a duration ``x`` seconds falls in bucket
``round(ln(max(x, FLOOR_SECONDS)) * RESOLUTION)``; ``BUCKET_SQL`` is the same formula in SQL.
``percentile(counts, fraction)`` takes ``{bucket: count}`` and returns the value at ``fraction``
as ``PERCENTILE_CONT`` does (rank ``fraction * (n - 1)``, linear between the two nearest ranks),
each rank's value within half a bucket: ``ACCURACY``, about 2.5% (durations under
``FLOOR_SECONDS`` count as ``FLOOR_SECONDS``). ``None`` for no data.

The resolution is coarse on purpose: the metrics rollups (``metrics_rollup``) store one row per
bucket, organization, job type and hour or day, and a 30-day window must sum few enough of them
to answer within SPEC §8's 100 ms (about 140 buckets cover 10 ms to 10 s). Raw and stored
histograms use the same formula, so they add up.
"""

import math

RESOLUTION = 20
FLOOR_SECONDS = 0.001
# Half a bucket, relative: exp(0.5 / RESOLUTION) - 1.
ACCURACY = math.exp(0.5 / RESOLUTION) - 1


def bucket_sql(column: str) -> str:
	return f"ROUND(LN(GREATEST({column}, {FLOOR_SECONDS})) * {RESOLUTION})"


def bucket_of(seconds: float) -> int:
	scaled = math.log(max(seconds, FLOOR_SECONDS)) * RESOLUTION
	return int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))  # SQL's ROUND: halves away from 0


def value_of(bucket: int) -> float:
	return math.exp(bucket / RESOLUTION)


def percentile(counts: dict[int, int], fraction: float) -> float | None:
	if not 0 <= fraction <= 1:
		raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
	total = sum(counts.values())
	if total <= 0:
		return None
	rank = fraction * (total - 1)
	low = math.floor(rank)
	below, above = _value_at(counts, low), _value_at(counts, min(low + 1, total - 1))
	return below + (above - below) * (rank - low)


def _value_at(counts: dict[int, int], position: int) -> float:
	"""The value of the ``position``-th duration (from 0) in sorted order."""
	seen = 0
	for bucket in sorted(counts):
		seen += counts[bucket]
		if position < seen:
			return value_of(bucket)
	return value_of(max(counts))
