"""Section ``horse_memory``: one worker drains 10,000 jobs; its work horses' memory along the way."""

from dartwing.benchmarks.backlog import engine_drain_rate


def section_horse_memory(organization: str, jobs: int = 10_000, **_) -> None:
	"""One worker drains ``jobs`` jobs from a backlog of as many; its work horses' memory meanwhile."""
	rate, samples = engine_drain_rate(organization, jobs, jobs, 1)
	print(f"\n### 11. Work horse memory while one worker drains {jobs:,} jobs ({rate:.0f} jobs/s)\n")
	print("| jobs finished | horse RSS MiB (max in this stretch) |")
	print("|---|---|")
	stretch = max(jobs // 10, 1)
	for start in range(0, jobs, stretch):
		inside = [rss for done, rss in samples if start <= done < start + stretch]
		if inside:
			print(f"| {start:,}–{start + stretch:,} | {max(inside) / 2**20:.1f} |")
