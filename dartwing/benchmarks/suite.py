"""The benchmark suite: the engine side by side with raw ``frappe.enqueue`` on the same bench, in one run.

Run on a bench whose own workers are stopped (the suite starts its own)::

	bench --site SITE execute dartwing.benchmarks.suite.run --kwargs "{'repeat': 3}"
	bench --site SITE execute dartwing.benchmarks.suite.run --kwargs "{'sections': 'growth,claim'}"

It prints markdown tables (median and spread over ``repeat`` runs where it repeats), one section
each; ``sections`` picks some of them by name (``SECTIONS``), in the order given. Each section is a
module of ``dartwing.benchmarks`` (``SECTIONS`` names it; shared helpers are in ``common``):
1. ``throughput``: trivial-job throughput, raw ``frappe.enqueue("frappe.ping")`` vs the engine
   (``demo_echo``), with 1 and 2 burst workers;
2. ``submit``: ``submit`` cost vs a document insert + ``frappe.enqueue`` (p50/p95), and
   submit-to-start with one idle worker;
3. ``dedup``: 200 concurrent identical submits: jobs created and wall time;
4. ``growth``: with 1k, 10k, 100k and 1M jobs in the table (generated in bulk with MariaDB's
   sequence engine, spread over 30 days): the metrics rollups' backfill and a refresh after it,
   ``get_job_metrics`` over 24 hours, 7 and 30 days, the Job Type Health report over 30 days and
   the workspace's cards and charts (``api.desk``), beside the raw scan the metrics made before
   the rollups (30 days); and submit latency;
5. ``retry``: one retry-queue tick with 1k, 10k and 100k due jobs, and with 10k due beside 100k
   and 1M other jobs;
6. ``lateness``: how long after its due time a job starts, for retries after 1 s, 5 s and 30 s,
   ``run_at`` and a cron schedule, with the upkeep runner and one worker (as ``bench start`` has
   them), idle and while another worker is busy on another queue (also ``run_lateness``);
7. ``claim``: the claim of the next job with 1k, 10k, 100k and 1M jobs queued in one queue: the
   claim's candidate query and a whole claim, beside the query the claim ran before
   ``claim_order`` (priority with aging computed per row and sorted), in the same run (also
   ``run_claim``);
8. ``reaper``: the reaper's lost-token check with 1k, 10k and 100k Queued jobs whose tokens RQ
   holds: one pass as every minute (bounded) and one pass after Redis lost its data (all);
9. ``upkeep``: one upkeep pass (between full sweeps) with 100,000 jobs each Pending with ``run_at``
   tomorrow, Retrying until tomorrow, and Queued (also in ``run_lateness``).
10. ``backlog``: throughput over the first 200 jobs from a 200-job and a 100,000-job backlog, raw
   ``frappe.enqueue`` beside the engine, 1 and 2 workers (worker boot left out; median of
   ``repeat``);
11. ``horse_memory``: one worker drains 10,000 jobs; its work horses' memory along the way.
12. ``job_profile``: where the time of one drained trivial job goes (steps, statements, commits,
   Redis round trips, connections), the work horse's loop run in this process under cProfile.
13. ``restart``: SIGTERM to a worker 3 s into a job of 10 s, 60 s and 10 min, raw ``frappe.enqueue``
   beside the engine: when the worker exits and when the interrupted job runs again on a new
   worker (raw: capped, then SIGKILL); and a SIGKILL 10 s after the SIGTERM (Docker's default).
14. ``fairness``: organizations taking turns within a queue: the flooding organization's jobs
   started before another's first (2, 10 and 1,000 organizations), the claim with 1M queued over 1
   and 1,000 organizations, and throughput, each with the fair claim and without (also
   ``run_fairness``).
Everything it creates is deleted afterwards.
"""

import subprocess

import frappe

from dartwing.benchmarks.backlog import section_backlog
from dartwing.benchmarks.claim import section_claim
from dartwing.benchmarks.common import delete_org_jobs, drain_queues
from dartwing.benchmarks.dedup import section_dedup
from dartwing.benchmarks.fairness import section_fairness
from dartwing.benchmarks.growth import section_growth
from dartwing.benchmarks.horse_memory import section_horse_memory
from dartwing.benchmarks.job_profile import section_job_profile
from dartwing.benchmarks.lateness import section_lateness
from dartwing.benchmarks.reaper import section_reaper
from dartwing.benchmarks.restart import section_restart
from dartwing.benchmarks.retry import section_retry
from dartwing.benchmarks.submit_cost import section_submit
from dartwing.benchmarks.throughput import section_throughput
from dartwing.benchmarks.upkeep_pass import section_upkeep

SECTIONS = {
	"throughput": section_throughput,
	"submit": section_submit,
	"dedup": section_dedup,
	"growth": section_growth,
	"retry": section_retry,
	"lateness": section_lateness,
	"claim": section_claim,
	"reaper": section_reaper,
	"upkeep": section_upkeep,
	"backlog": section_backlog,
	"horse_memory": section_horse_memory,
	"job_profile": section_job_profile,
	"restart": section_restart,
	"fairness": section_fairness,
}


def run(sections: str | None = None, **options) -> None:
	"""Every section in order, or only ``sections`` (comma separated names of ``SECTIONS``)."""
	names = [name.strip() for name in (sections or ",".join(SECTIONS)).split(",") if name.strip()]
	unknown = [name for name in names if name not in SECTIONS]
	if unknown:
		raise ValueError(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
	organization = f"bench-{frappe.generate_hash(length=6)}"
	frappe.get_doc(
		{"doctype": "Organization", "organization_name": organization, "members": [{"user": "Administrator"}]}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	drain_queues()
	cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
	print(f"\nDartwing benchmarks on {frappe.local.site}: {cpu} CPUs, sections {', '.join(names)}\n")
	try:
		for name in names:
			SECTIONS[name](organization, **options)
	finally:
		frappe.db.rollback()
		drain_queues()
		delete_org_jobs(organization)
		frappe.delete_doc("Organization", organization, ignore_permissions=True, force=True)
		frappe.db.commit()


def run_lateness() -> None:
	run("lateness,upkeep")


def run_claim(**options) -> None:
	run("claim", **options)


def run_fairness(**options) -> None:
	run("fairness", **options)
