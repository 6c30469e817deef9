"""Section ``reaper``: the reaper's lost-token check with 1k, 10k and 100k Queued jobs whose tokens
RQ holds: one pass as every minute (bounded) and one pass after Redis lost its data (all)."""

import time

from dartwing.benchmarks.claim import CLAIM_QUEUE, generate_queued
from dartwing.benchmarks.common import BENCH_PREFIX, delete_org_jobs


def _fake_tokens(start: int, end: int, remove: bool = False) -> None:
	"""RQ's records of the benchmark's queued jobs' tokens, waiting in their queue (or gone)."""
	from frappe.utils.background_jobs import generate_qname, get_redis_conn

	connection, origin = get_redis_conn(), generate_qname(CLAIM_QUEUE)
	for first in range(start + 1, end + 1, 10_000):
		ids = [f"{BENCH_PREFIX}-token-{n}" for n in range(first, min(first + 10_000, end + 1))]
		pipe = connection.pipeline(transaction=False)
		for token in ids:
			if remove:
				pipe.delete(f"rq:job:{token}")
			else:
				pipe.hset(f"rq:job:{token}", mapping={"status": "queued", "origin": origin})
		if remove:
			pipe.delete(f"rq:queue:{origin}")
		else:
			pipe.rpush(f"rq:queue:{origin}", *ids)
		pipe.execute()


def section_reaper(organization: str, sizes=(1_000, 10_000, 100_000), **_) -> None:
	"""The reaper's lost-token check over the Queued jobs, all tokens alive in Redis: one pass as
	every minute (at most ``reaper.PASS_BUDGET`` jobs, going on where the last stopped), and one
	pass over everything, as after Redis lost its data."""
	from frappe.utils.background_jobs import get_redis_conn

	from dartwing.dartwing_core.background_jobs import reaper

	marker = reaper._token_store_key(reaper.TOKENS_MARKER)
	print("\n### 8. A reaper pass over the Queued jobs (all tokens held by RQ)\n")
	print("| queued jobs | one pass (s) | jobs pushed again | a pass after Redis lost its data (s) |")
	print("|---|---|---|---|")
	generated = 0
	try:
		for size in sizes:
			generate_queued(organization, generated, size)
			_fake_tokens(generated, size)
			generated = size
			get_redis_conn().set(marker, 1)
			started = time.perf_counter()
			repushed = reaper.repush_lost_queued()
			bounded = time.perf_counter() - started
			get_redis_conn().delete(marker)
			started = time.perf_counter()
			repushed += reaper.repush_lost_queued()
			everything = time.perf_counter() - started
			print(f"| {size:,} | {bounded:.2f} | {repushed} | {everything:.2f} |", flush=True)
	finally:
		_fake_tokens(0, generated, remove=True)
		delete_org_jobs(organization)
