"""Histogram percentiles agree with exact PERCENTILE_CONT within half a bucket."""

import random

import pytest

from dartwing.dartwing_core.background_jobs import metrics_math


def exact(values, fraction):
	ordered = sorted(values)
	position = fraction * (len(ordered) - 1)
	low = int(position)
	high = min(low + 1, len(ordered) - 1)
	return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def histogram(values):
	counts = {}
	for value in values:
		bucket = metrics_math.bucket_of(value)
		counts[bucket] = counts.get(bucket, 0) + 1
	return counts


@pytest.mark.parametrize("fraction", [0, 0.5, 0.9, 0.95, 0.99, 1])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_half_a_bucket_of_the_exact_value(fraction, seed):
	rng = random.Random(seed)
	values = [rng.lognormvariate(0, 1.5) for _ in range(5000)]
	approx = metrics_math.percentile(histogram(values), fraction)
	assert approx == pytest.approx(exact(values, fraction), rel=0.026)


def test_a_single_value_and_equal_values():
	assert metrics_math.percentile(histogram([2.5]), 0.95) == pytest.approx(2.5, rel=0.026)
	assert metrics_math.percentile(histogram([7.0] * 10), 0.5) == pytest.approx(7.0, rel=0.026)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.95])
def test_few_values_interpolate_between_ranks_like_percentile_cont(fraction):
	values = [3.0 + 0.77 * i for i in range(9)]
	assert metrics_math.percentile(histogram(values), fraction) == pytest.approx(
		exact(values, fraction), rel=0.026
	)


def test_tiny_durations_count_as_the_floor():
	assert metrics_math.percentile(histogram([0, 0.0001, 0.0002]), 0.5) == pytest.approx(0.001, rel=0.026)


def test_no_data_and_bad_fractions():
	assert metrics_math.percentile({}, 0.5) is None
	with pytest.raises(ValueError):
		metrics_math.percentile({1: 1}, 1.5)


def test_bucket_formula_matches_the_sql_text():
	assert metrics_math.bucket_sql("run_time") == "ROUND(LN(GREATEST(run_time, 0.001)) * 20)"
	assert metrics_math.bucket_of(1.0) == 0
	assert metrics_math.value_of(metrics_math.bucket_of(10.0)) == pytest.approx(10.0, rel=0.026)


def test_accuracy_is_half_a_bucket_of_about_two_and_a_half_percent():
	assert metrics_math.ACCURACY == pytest.approx(0.0253, abs=1e-4)
	for seconds in (0.013, 0.5, 1.0, 2.71, 9.99, 3600):
		stored = metrics_math.value_of(metrics_math.bucket_of(seconds))
		assert abs(stored / seconds - 1) <= metrics_math.ACCURACY + 1e-12
