"""Upkeep: the engine's own timing, on time and independent of Frappe's scheduler and user queues.

Contract:
- ``bench dartwing upkeep`` runs ``run_forever()``: one thread per site of the bench that has
  dartwing installed (the sites folder is read again every ``SITES_REFRESH_SECONDS``). Every
  ``PASS_SECONDS`` a site's thread makes one ``upkeep_pass``:
  - Retrying jobs whose retry came due and Pending jobs whose ``run_at`` came (only the due
    times since the previous pass: an index range, never a scan of the backlog), and due
    schedules, are moved on;
  - every ``RECOVER_SECONDS`` the reaper recovers Running jobs whose worker died, and
    ``turns.repair`` sets waiting the organizations' turns a race left cleared;
  - every ``SWEEP_SECONDS``, and whenever this runner takes the site's lease, the full sweeps run:
    every due retry, every ready Pending job, and Queued jobs whose token RQ lost; and the
    metrics rollups are refreshed (``metrics_rollup.refresh``, within its time budget; a failure
    there is logged and does not stop the pass).
  It never goes through RQ, so it waits behind no user job and needs no worker and no scheduler.
- ``scheduler_fallback()`` is Frappe's per-minute scheduler event: when no runner has passed
  within ``STALE_AFTER_SECONDS`` it does the full sweeps, the reaper, the schedules and the
  metrics rollups itself (later, and only while the scheduler runs); otherwise it does nothing.
- Every move is a conditional transition, so two runners, or a runner and the fallback, never
  double-act. A lease per site in Redis (``LEASE_SECONDS``) keeps a second runner on standby so
  as not to repeat the work; correctness does not depend on it. Killing a runner loses nothing:
  the rows are the truth. Told to stop (SIGTERM, SIGINT), a runner finishes the pass under way,
  gives up its leases (``release_lease``: a standby runner takes over on its next pass) and
  exits within ``STOP_SECONDS``. A failed pass (the database restarting) is logged and retried with a
  growing pause, up to 10 s.
- Each pass records its time (UTC epoch) in the queue Redis (which clear-cache leaves alone),
  under a key of the site's. ``liveness()`` answers the seconds since the last pass, whether
  Frappe's scheduler is active for the site, and a warning when upkeep is older than
  ``STALE_AFTER_SECONDS`` (or never ran) or the scheduler is off.
"""

import json
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import clock
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

PASS_SECONDS = 0.5
RECOVER_SECONDS = 2.0
SWEEP_SECONDS = 60.0
LEASE_SECONDS = 5.0
STALE_AFTER_SECONDS = 10.0
SITES_REFRESH_SECONDS = 30.0
# Due times this close before the previous pass are read again: a row committed a moment after
# its due time passed is still seen (a second look at a row is harmless).
WINDOW_OVERLAP_SECONDS = 2.0
LIVENESS_KEY = "dartwing:upkeep:last_pass"
LEASE_KEY = "dartwing:upkeep:lease"
STOP_SECONDS = 1.5
# Deletes the lease only if this runner still holds it.
_RELEASE_LEASE = (
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _redis():
	from frappe.utils.background_jobs import get_redis_conn

	return get_redis_conn()


def site_key(key: str) -> str:
	return f"{key}:{frappe.local.site}"


def runner_id() -> str:
	return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------------ liveness


def record_pass(runner: str, took: float) -> None:
	_redis().set(
		site_key(LIVENESS_KEY), json.dumps({"at": time.time(), "runner": runner, "took": round(took, 4)})
	)


def last_pass() -> dict | None:
	raw = _redis().get(site_key(LIVENESS_KEY))
	if not raw:
		return None
	try:
		return json.loads(raw)
	except ValueError:
		return None


def scheduler_state() -> dict:
	"""Whether Frappe's scheduler runs events for this site, and if not, why."""
	from frappe.utils.scheduler import is_scheduler_disabled

	conf = frappe.local.conf
	if conf.maintenance_mode:
		reason = _("the site is in maintenance mode")
	elif conf.pause_scheduler:
		reason = _("pause_scheduler is set in the site config")
	elif is_scheduler_disabled(verbose=False):
		reason = _("the scheduler is disabled (bench --site {0} enable-scheduler)").format(frappe.local.site)
	else:
		reason = None
	return {"active": reason is None, "reason": reason}


def liveness() -> dict:
	"""Upkeep's and the scheduler's state for this site, with the warnings a person should see."""
	seen = last_pass()
	age = round(max(time.time() - seen["at"], 0.0), 3) if seen else None
	scheduler = scheduler_state()
	warnings = []
	if age is None or age > STALE_AFTER_SECONDS:
		when = _("has never run on this site") if age is None else _("last ran {0} s ago").format(int(age))
		fallback = (
			_("they wait for Frappe's scheduler (about once a minute)")
			if scheduler["active"]
			else _("and with Frappe's scheduler off nothing moves them")
		)
		warnings.append(
			_(
				"Dartwing upkeep {0}: due retries, run_at jobs, schedules and the recovery of dead workers are late; {1}. Run bench dartwing upkeep (bench start runs it)."
			).format(when, fallback)
		)
	if not scheduler["active"]:
		warnings.append(
			_(
				"Frappe's scheduler is off for this site: {0}. Dartwing's upkeep does not need it; other scheduled events of the site do not run."
			).format(scheduler["reason"])
		)
	return {
		"upkeep_last_pass_age_seconds": age,
		"upkeep_runner": seen["runner"] if seen else None,
		"upkeep_stale_after_seconds": STALE_AFTER_SECONDS,
		"upkeep_alive": age is not None and age <= STALE_AFTER_SECONDS,
		"scheduler_active": scheduler["active"],
		"scheduler_reason": scheduler["reason"],
		"warnings": warnings,
	}


# ------------------------------------------------------------------ one pass


def take_lease(runner: str) -> bool:
	"""Hold (or keep holding) this site's upkeep lease for ``LEASE_SECONDS``."""
	connection, key = _redis(), site_key(LEASE_KEY)
	ttl = int(LEASE_SECONDS * 1000)
	if connection.set(key, runner, nx=True, px=ttl):
		return True
	holder = connection.get(key)
	if holder is not None and holder.decode() == runner:
		connection.pexpire(key, ttl)
		return True
	return False


def release_lease(runner: str) -> bool:
	"""Give up this site's upkeep lease if ``runner`` holds it; another runner takes it on its next pass."""
	return bool(_redis().eval(_RELEASE_LEASE, 1, site_key(LEASE_KEY), runner))


class SiteState:
	"""What a runner remembers about one site between passes."""

	def __init__(self):
		self.window_start = None  # UTC: due times after this were not yet looked at
		self.last_recover = 0.0
		self.last_sweep = 0.0
		self.held_lease = False


def upkeep_pass(state: SiteState, runner: str) -> dict:
	"""One pass over the connected site. Returns what it moved."""
	from dartwing.dartwing_core.background_jobs import dispatch, reaper, retry_queue, schedules, turns

	started = time.monotonic()
	if not take_lease(runner):
		state.held_lease = False
		return {"lease": False}
	now_utc = clock.utc_now()
	done = {"lease": True}
	full_sweep = not state.held_lease or time.monotonic() - state.last_sweep >= SWEEP_SECONDS
	state.held_lease = True
	if full_sweep:
		done["retries"] = retry_queue.requeue_due_retries(now=now_utc)
		done["pending"] = dispatch.dispatch_pending(now=now_utc)
		done["repushed"] = reaper.repush_lost_queued()
		state.last_sweep = time.monotonic()
		frappe.db.commit()
		done["metrics"] = refresh_metrics()
	else:
		since = state.window_start
		done["retries"] = retry_queue.requeue_due_retries(due_after=since, now=now_utc)
		done["pending"] = dispatch.dispatch_pending(due_after=since, now=now_utc)
	state.window_start = now_utc - timedelta(seconds=WINDOW_OVERLAP_SECONDS)
	done["schedules"] = len(schedules.fire_due_schedules())
	if time.monotonic() - state.last_recover >= RECOVER_SECONDS:
		done["recovered"] = reaper.recover_dead_running()
		done["turns_repaired"] = turns.repair()
		state.last_recover = time.monotonic()
	frappe.db.commit()
	record_pass(runner, time.monotonic() - started)
	return done


def refresh_metrics(time_budget_seconds: float | None = None) -> dict | None:
	"""The metrics rollups' refresh; a failure is logged, never raised (jobs must keep moving)."""
	from dartwing.dartwing_core.background_jobs import metrics_rollup

	try:
		return metrics_rollup.refresh(
			time_budget_seconds=time_budget_seconds or metrics_rollup.TIME_BUDGET_SECONDS
		)
	except Exception:
		frappe.db.rollback()
		jobs_logger().exception({"event": "metrics_rollup_failed", "site": frappe.local.site})
		return None


# The scheduler's event runs in a worker, where a longer refresh delays nothing due.
FALLBACK_METRICS_BUDGET_SECONDS = 20.0


def scheduler_fallback() -> dict:
	from dartwing.dartwing_core.background_jobs import dispatch, reaper, retry_queue, schedules, turns

	if liveness()["upkeep_alive"]:
		return {"skipped": "upkeep is running"}
	done = {
		"retries": retry_queue.requeue_due_retries(),
		**reaper.reap(),
		"pending": dispatch.dispatch_pending(),
		"schedules": len(schedules.fire_due_schedules()),
		"turns_repaired": turns.repair(),
	}
	frappe.db.commit()
	done["metrics"] = refresh_metrics(FALLBACK_METRICS_BUDGET_SECONDS)
	return done


# ------------------------------------------------------------------ the runner


def _has_dartwing(site: str, sites_path: str) -> bool:
	try:
		with open(os.path.join(sites_path, site, "site_config.json")) as config:
			if not json.load(config).get("db_name"):
				return False
		frappe.init(site=site, sites_path=sites_path)
		frappe.connect()
		return "dartwing" in frappe.get_installed_apps()
	except Exception:
		return False
	finally:
		frappe.destroy()


class SiteThread(threading.Thread):
	def __init__(self, site: str, sites_path: str, runner: str, stop: threading.Event):
		super().__init__(name=f"dartwing-upkeep-{site}", daemon=True)
		self.site = site
		self.sites_path = sites_path
		self.runner = runner
		self.stop_event = stop
		self.state = SiteState()
		self.failures = 0

	def run(self):
		while not self.stop_event.is_set():
			began = time.monotonic()
			try:
				frappe.init(site=self.site, sites_path=self.sites_path)
				frappe.connect()
				frappe.set_user("Administrator")
				upkeep_pass(self.state, self.runner)
				self.failures = 0
			except Exception:
				self.failures += 1
				self.state.held_lease = False
				try:
					frappe.db.rollback()
					jobs_logger().exception(
						{"event": "upkeep_pass_failed", "site": self.site, "failures": self.failures}
					)
				except Exception:
					pass
			finally:
				frappe.destroy()
			pause = PASS_SECONDS if not self.failures else min(PASS_SECONDS * 2**self.failures, 10.0)
			self.stop_event.wait(max(pause - (time.monotonic() - began), 0.05))
		self._release_lease()

	def _release_lease(self):
		if not self.state.held_lease:
			return
		try:
			frappe.init(site=self.site, sites_path=self.sites_path)
			release_lease(self.runner)
			print(f"dartwing upkeep {self.runner}: released {self.site}", flush=True)
		except Exception:
			pass  # the lease expires by itself within LEASE_SECONDS
		finally:
			frappe.destroy()


def run_forever(sites_path: str, only: list[str] | None = None, stop: threading.Event | None = None) -> None:
	"""Keep one upkeep thread per site with dartwing until ``stop`` is set; then give each thread
	until ``STOP_SECONDS`` in all to finish its pass and give up its lease."""
	stop = stop or threading.Event()
	runner = runner_id()
	threads: dict[str, SiteThread] = {}
	while not stop.is_set():
		for site in only or frappe.utils.get_sites(sites_path):
			alive = threads.get(site)
			if alive and alive.is_alive():
				continue
			if _has_dartwing(site, sites_path):
				threads[site] = SiteThread(site, sites_path, runner, stop)
				threads[site].start()
				print(f"dartwing upkeep {runner}: serving {site}", flush=True)
		stop.wait(SITES_REFRESH_SECONDS)
	deadline = time.monotonic() + STOP_SECONDS
	for thread in threads.values():
		thread.join(timeout=max(deadline - time.monotonic(), 0))
