"""Section ``fairness``: organizations taking turns within a queue (``turns``).

1. Jobs of the flooding organization started before another's first: the flooder queues
   ``flood`` demo_echo jobs (the short queue), then each of the other organizations queues one
   (2, 10 and 1,000 organizations in all); one burst worker drains them. Max and median over the
   other organizations, with the fair claim and without it (``fair_share`` off: priority with
   aging only, the order before turns), in the same run.
2. The claim (candidates, turn and the whole claim, as section ``claim`` times it) with 1,000,000
   jobs queued in one queue, spread over 1 and over 1,000 organizations, with the turn rows the
   engine keeps (``turns.repair``).
3. Trivial-job throughput (section ``throughput``'s measure) with the fair claim and without.
4. (``parts`` with ``sites`` and ``other_site``) Two sites of the bench, one burst worker: this
   site's jobs started before the other site's one job, queued behind ``flood`` of them.
"""

import json
import statistics
import subprocess
import time

import frappe

from dartwing.benchmarks.claim import CLAIM_QUEUE, generate_queued
from dartwing.benchmarks.common import (
	BENCH_PREFIX,
	burst_workers,
	drain_queues,
	percentile,
	spread,
	wait_for_purge,
)
from dartwing.benchmarks.throughput import throughput
from dartwing.dartwing_core.background_jobs import clock, turns
from dartwing.dartwing_core.background_jobs.settings import SETTINGS_DOCTYPE
from dartwing.dartwing_core.background_jobs.submit import submit
from dartwing.processes import frappe_cli


def set_fair_share(enabled: bool) -> None:
	settings = frappe.get_single(SETTINGS_DOCTYPE)
	settings.fair_share = 1 if enabled else 0
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def _organizations(organization: str, count: int) -> list[str]:
	"""``count`` organizations (the benchmark's own first), Administrator a member of each."""
	made = [organization]
	for n in range(1, count):
		name = f"{organization}-{n:04d}"
		if not frappe.db.exists("Organization", name):
			frappe.get_doc(
				{"doctype": "Organization", "organization_name": name, "members": [{"user": "Administrator"}]}
			).insert(ignore_permissions=True)
		made.append(name)
	frappe.db.commit()
	return made


def _delete_jobs(organizations: list[str]) -> None:
	for start in range(0, len(organizations), 100):
		chunk = tuple(organizations[start : start + 100])
		for table in ("Job Execution Log", "Background Job"):
			frappe.db.sql(f"DELETE FROM `tab{table}` WHERE organization IN %s", (chunk,))
		frappe.db.sql(f"DELETE FROM {turns.TURN_TABLE} WHERE organization IN %s", (chunk,))
		frappe.db.commit()


def ahead_of_first(organizations: list[str], flood: int) -> list[int]:
	"""Flooder's jobs started before each other organization's first (one burst worker)."""
	flooder, others = organizations[0], organizations[1:]
	drain_queues()
	for n in range(flood):
		submit("demo_echo", {"flood": n}, organization=flooder)
		if n % 50 == 49:
			frappe.db.commit()
	for organization in others:
		submit("demo_echo", {"first": organization}, organization=organization)
	frappe.db.commit()
	burst_workers(1)
	frappe.db.rollback()
	started = frappe.db.sql(
		"""SELECT organization, started_at FROM `tabBackground Job`
		WHERE organization IN %s AND started_at IS NOT NULL ORDER BY started_at""",
		(tuple(organizations),),
		as_dict=True,
	)
	firsts, flooder_starts = {}, []
	for row in started:
		if row.organization == flooder:
			flooder_starts.append(row.started_at)
		else:
			firsts.setdefault(row.organization, row.started_at)
	_delete_jobs(organizations)
	return [sum(1 for at in flooder_starts if at < firsts[organization]) for organization in others]


def queue_on_this_site(count: int) -> dict:
	"""Run in another site by ``bench --site S execute``: ``count`` demo_echo jobs of a fresh
	organization there."""
	organization = f"bench-{frappe.generate_hash(length=6)}"
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": organization, "members": [{"user": "Administrator"}]}
	).insert(ignore_permissions=True)
	jobs = [submit("demo_echo", {"n": n}, organization=organization)["job_id"] for n in range(count)]
	frappe.db.commit()
	return {"organization": organization, "jobs": jobs}


def starts_on_this_site(jobs: list[str], organization: str | None = None) -> dict:
	"""Each job's start (UTC, ISO); with ``organization``, that organization is then deleted with
	its jobs (run in another site by ``bench --site S execute``)."""
	rows = frappe.get_all("Background Job", filters={"name": ("in", jobs)}, fields=["name", "started_at"])
	starts = {
		row.name: clock.site_to_utc(row.started_at).isoformat() if row.started_at else None for row in rows
	}
	if organization:
		_delete_jobs([organization])
		frappe.db.delete("Organization Member", {"parent": organization})
		frappe.db.delete("Organization", {"name": organization})
		frappe.db.commit()
	return starts


def _execute_on(site: str, method: str, **kwargs) -> dict:
	done = subprocess.run(
		frappe_cli(site, "execute", f"{__name__}.{method}", "--kwargs", json.dumps(kwargs)),
		capture_output=True,
		text=True,
		timeout=600,
	)
	return json.loads(done.stdout[done.stdout.index("{") :])


def ahead_across_sites(organization: str, other_site: str, flood: int) -> int:
	"""This site's jobs started before another site's one job, queued behind ``flood`` of them,
	with one burst worker serving both."""
	drain_queues()
	jobs = []
	for n in range(flood):
		jobs.append(submit("demo_echo", {"flood": n}, organization=organization)["job_id"])
		if n % 50 == 49:
			frappe.db.commit()
	frappe.db.commit()
	other = _execute_on(other_site, "queue_on_this_site", count=1)
	burst_workers(1)
	other_start = _execute_on(
		other_site, "starts_on_this_site", jobs=other["jobs"], organization=other["organization"]
	)[other["jobs"][0]]
	starts = starts_on_this_site(jobs)
	_delete_jobs([organization])
	return sum(1 for start in starts.values() if start and start < other_start)


def claim_ms(
	organization: str, spread_over: int, size: int, calls: int, rounds: int = 10
) -> dict[bool, list[float]]:
	"""Whole claims (rolled back), with the fair claim and without, with ``size`` jobs queued in
	one queue over ``spread_over`` organizations (``claim.generate_queued``). The two alternate in
	``rounds`` rounds, so that the host's pace moving during the run weighs on both alike."""
	from dartwing.dartwing_core.background_jobs import claiming

	generate_queued(organization, 0, size, organizations=spread_over)
	frappe.db.sql("ANALYZE TABLE `tabBackground Job`")
	timings = {True: [], False: []}
	for _ in range(rounds):
		for fair in (True, False):
			set_fair_share(fair)
			for _ in range(max(calls // rounds, 1)):
				started = time.perf_counter()
				claimed = claiming.claim(CLAIM_QUEUE, None, None)
				timings[fair].append((time.perf_counter() - started) * 1000)
				assert claimed, "nothing claimed"
				frappe.db.rollback()
	_delete_generated()
	return timings


def _delete_generated(batch: int = 50_000) -> None:
	while True:
		frappe.db.sql(
			f"DELETE FROM `tabBackground Job` WHERE queue = %s AND name LIKE '{BENCH_PREFIX}-Q-%%' LIMIT {batch}",
			CLAIM_QUEUE,
		)
		deleted = frappe.db._cursor.rowcount
		frappe.db.commit()
		if deleted < batch:
			break
	frappe.db.delete(turns.TURN_DOCTYPE, {"queue": CLAIM_QUEUE})
	frappe.db.commit()
	wait_for_purge()


def print_turns(organization: str, flood: int, sizes) -> None:
	print(f"Flooder's jobs started before each other organization's first (flood of {flood}, one worker):\n")
	print(
		"| organizations | fair claim: max | fair claim: median | without turns: max | without turns: median |"
	)
	print("|---|---|---|---|---|")
	for count in sizes:
		organizations = _organizations(organization, count)
		results = {}
		for fair in (True, False):
			set_fair_share(fair)
			results[fair] = ahead_of_first(organizations, flood)
		print(
			f"| {count:,} | {max(results[True])} | {statistics.median(results[True]):.0f} | "
			f"{max(results[False])} | {statistics.median(results[False]):.0f} |",
			flush=True,
		)


def print_sites(organization: str, other_site: str, flood: int) -> None:
	ahead = ahead_across_sites(organization, other_site, flood)
	print(f"\nTwo sites, one worker: jobs of this site started before {other_site}'s one job, queued")
	print(f"behind {flood} of them: {ahead}\n", flush=True)


def print_claim(organization: str, claim_size: int, calls: int) -> None:
	print(f"\nClaim with {claim_size:,} jobs queued in one queue (ms, {calls} claims each):\n")
	print("| organizations | fair claim p50 | fair claim p95 | without turns p50 | without turns p95 |")
	print("|---|---|---|---|---|")
	for spread_over in (1, 1_000):
		timings = claim_ms(organization, spread_over, claim_size, calls)
		print(
			f"| {spread_over:,} | {statistics.median(timings[True]):.2f} | {percentile(timings[True], 95):.2f} | "
			f"{statistics.median(timings[False]):.2f} | {percentile(timings[False], 95):.2f} |",
			flush=True,
		)


def print_throughput(organization: str, jobs: int, repeat: int) -> None:
	print(f"\nTrivial-job throughput, {jobs} jobs (jobs/s; median (min–max) of {repeat}):\n")
	print("| workers | raw frappe.enqueue | engine, fair claim | engine, without turns | fair / without |")
	print("|---|---|---|---|---|")
	for workers in (1, 2):
		measured = {True: [], False: []}
		for _ in range(repeat):
			# Alternating, so that a slow spell of the host weighs on both alike.
			for fair in (True, False):
				set_fair_share(fair)
				measured[fair].append(throughput(organization, jobs, workers))
		raw = [run[0] for run in measured[True] + measured[False]]
		fair_rate = [run[1] for run in measured[True]]
		plain_rate = [run[1] for run in measured[False]]
		print(
			f"| {workers} | {spread(raw)} | {spread(fair_rate)} | {spread(plain_rate)} | "
			f"{statistics.median(fair_rate) / statistics.median(plain_rate):.2f}x |",
			flush=True,
		)


def section_fairness(
	organization: str,
	repeat: int = 3,
	flood: int = 400,
	sizes=(2, 10, 1_000),
	claim_size: int = 1_000_000,
	calls: int = 200,
	jobs: int = 200,
	parts: str = "turns,claim,throughput",
	other_site: str | None = None,
	**_,
) -> None:
	"""``parts``: some of ``turns``, ``sites``, ``claim``, ``throughput`` (comma separated);
	``sites`` needs ``other_site``, another site of this bench with Dartwing (demo_echo enabled)."""
	print("\n### Fair share: organizations take turns within a queue\n")
	chosen = {part.strip() for part in parts.split(",")}
	try:
		if "turns" in chosen:
			print_turns(organization, flood, sizes)
		if "sites" in chosen and other_site:
			print_sites(organization, other_site, flood)
		if "claim" in chosen:
			print_claim(organization, claim_size, calls)
		if "throughput" in chosen:
			print_throughput(organization, jobs, repeat)
	finally:
		set_fair_share(True)
		others = frappe.get_all("Organization", filters={"name": ("like", f"{organization}-%")}, pluck="name")
		_delete_jobs(others)
		for name in others:
			frappe.db.delete("Organization Member", {"parent": name})
			frappe.db.delete("Organization", {"name": name})
		frappe.db.commit()
