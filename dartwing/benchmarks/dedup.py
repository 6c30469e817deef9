"""Section ``dedup``: 200 concurrent identical submits: jobs created and wall time."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import frappe

from dartwing.benchmarks.common import delete_org_jobs, drain_queues
from dartwing.dartwing_core.background_jobs.submit import submit


def concurrent_identical(organization: str, job_type: str, callers: int = 200) -> tuple[int, float]:
	site, sites_path = frappe.local.site, frappe.local.sites_path
	errors = []

	def one(barrier):
		frappe.init(site=site, sites_path=sites_path)
		try:
			frappe.connect()
			frappe.set_user("Administrator")
			barrier.wait(timeout=120)
			submit(job_type, {"same": True}, organization=organization)
			frappe.db.commit()
		except Exception as exc:
			errors.append(exc)
		finally:
			frappe.destroy()

	started = time.perf_counter()
	# MariaDB's default max_connections is 151: 120 callers race at once, then the rest.
	for wave in (min(callers, 120), max(callers - 120, 0)):
		if not wave:
			continue
		barrier = threading.Barrier(wave)
		with ThreadPoolExecutor(max_workers=wave) as pool:
			for _ in range(wave):
				pool.submit(one, barrier)
	wall = time.perf_counter() - started
	frappe.db.rollback()
	created = frappe.db.count("Background Job", {"organization": organization, "job_type": job_type})
	if errors:
		print(f"  {len(errors)} callers failed, e.g. {errors[0]!r}")
	drain_queues()
	delete_org_jobs(organization)
	return created, wall


def section_dedup(organization: str, repeat: int = 3, **_) -> None:
	deduped = frappe.get_doc(
		{"doctype": "Job Type", "job_type_name": f"bench_dedup_{frappe.generate_hash(length=4)}",
		 "title": "bench dedup", "handler": "demo_echo", "queue": "short", "dedup_window_seconds": 600},
	).insert(ignore_permissions=True)  # fmt: skip
	frappe.db.commit()
	try:
		print("\n### 3. 200 concurrent identical submits\n")
		print("| run | jobs created | wall s |")
		print("|---|---|---|")
		for n in range(repeat):
			created, wall = concurrent_identical(organization, deduped.name)
			print(f"| {n + 1} | {created} | {wall:.2f} |", flush=True)
	finally:
		delete_org_jobs(organization)
		frappe.delete_doc("Job Type", deduped.name, ignore_permissions=True, force=True)
		frappe.db.commit()
