import pytest

from dartwing.dartwing_core.background_jobs.backoff import MAX_DELAY, BackoffPolicy, parse_schedule


def test_exponential_full_jitter_is_bounded_by_the_doubling_ceiling_and_the_cap():
	policy = BackoffPolicy("Exponential", base=10, cap=100)
	assert policy.delay(1, rng=lambda: 1.0) == 10
	assert policy.delay(2, rng=lambda: 1.0) == 20
	assert policy.delay(3, rng=lambda: 1.0) == 40
	assert policy.delay(5, rng=lambda: 1.0) == 100  # capped
	assert policy.delay(60, rng=lambda: 1.0) == 100
	assert policy.delay(3, rng=lambda: 0.0) == 0
	assert policy.delay(3, rng=lambda: 0.5) == 20


def test_exponential_jitter_spreads_delays():
	policy = BackoffPolicy("Exponential", base=10, cap=1000)
	delays = {round(policy.delay(4), 3) for _ in range(50)}
	assert len(delays) > 10
	assert all(0 <= d <= 80 for d in delays)


def test_fixed():
	assert BackoffPolicy("Fixed", base=7).delay(1) == 7
	assert BackoffPolicy("Fixed", base=7).delay(9) == 7


def test_schedule_repeats_its_last_value():
	policy = BackoffPolicy("Schedule", schedule=parse_schedule("0,60,300,900,3600"))
	assert [policy.delay(a) for a in range(1, 8)] == [0, 60, 300, 900, 3600, 3600, 3600]


def test_retry_after_wins_and_is_bounded():
	policy = BackoffPolicy("Fixed", base=7)
	assert policy.delay(1, retry_after=42) == 42
	assert policy.delay(1, retry_after=-5) == 0
	assert policy.delay(1, retry_after=10**9) == MAX_DELAY


@pytest.mark.parametrize("text", ["a,b", "1,,2", "-1", "1e12", "nan"])
def test_bad_schedules_are_refused(text):
	with pytest.raises(ValueError):
		parse_schedule(text)


def test_schedule_strategy_needs_delays_and_unknown_strategy_is_refused():
	assert parse_schedule(" 0, 5 ,10 ") == (0.0, 5.0, 10.0)
	assert parse_schedule("") == ()
	with pytest.raises(ValueError, match="at least one delay"):
		BackoffPolicy("Schedule")
	with pytest.raises(ValueError, match="Unknown backoff"):
		BackoffPolicy("Linear")
