"""A second database connection for a running job's out-of-band writes.

Contract: progress, checkpoints and heartbeats of a running job are written and committed on
this connection, so they are visible at once without committing (or being rolled back with)
the handler's own transaction on ``frappe.db``. Every write is guarded by the job's name, status
``Running`` and attempt, so a worker that lost the job cannot touch a later attempt.
It is thread-safe (the watchdog thread and the handler share it) and uses no ``frappe.local``
after construction, so it may be used from threads that Frappe does not know about. Each of
these writes is a heartbeat: ``heartbeat`` (site time, the ``now`` given, for people) and
``heartbeat_utc`` (``clock.utc_now()``, what the reaper compares).
"""

import threading

import frappe
import pymysql

from dartwing.dartwing_core.background_jobs import clock


class SideChannel:
	def __init__(self, job: str, attempt: int):
		conf = frappe.conf
		self.job = job
		self.attempt = attempt
		self._params = {
			"user": conf.db_user or conf.db_name,
			"password": conf.db_password,
			"database": conf.db_name,
			"charset": "utf8mb4",
			"autocommit": True,
			"connect_timeout": 5,
		}
		if conf.db_socket:
			self._params["unix_socket"] = conf.db_socket
		else:
			self._params["host"] = conf.db_host or "127.0.0.1"
			self._params["port"] = int(conf.db_port or 3306)
		self._conn = None
		self._lock = threading.Lock()

	def _execute(self, query: str, args: tuple, fetch: bool = False):
		with self._lock:
			for attempt in (1, 2):
				try:
					if self._conn is None:
						self._conn = pymysql.connect(**self._params)
					with self._conn.cursor() as cursor:
						cursor.execute(query, args)
						return cursor.fetchone() if fetch else cursor.rowcount
				except pymysql.err.OperationalError:
					self._close_unlocked()
					if attempt == 2:
						raise

	def _guarded_update(self, assignments: str, args: tuple) -> bool:
		return bool(
			self._execute(
				f"UPDATE `tabBackground Job` SET {assignments} WHERE name = %s AND status = 'Running' AND attempt = %s",
				(*args, self.job, self.attempt),
			)
		)

	def progress(self, percent: float, message: str | None, now) -> bool:
		return self._guarded_update(
			"progress_percent = %s, progress_message = %s, heartbeat = %s, heartbeat_utc = %s",
			(percent, message, now, clock.utc_now()),
		)

	def checkpoint(self, state_json: str, now) -> bool:
		return self._guarded_update(
			"checkpoint = %s, heartbeat = %s, heartbeat_utc = %s", (state_json, now, clock.utc_now())
		)

	def beat(self, now) -> bool:
		return self._guarded_update("heartbeat = %s, heartbeat_utc = %s", (now, clock.utc_now()))

	def poll(self) -> tuple[str, int, int] | None:
		"""(status, attempt, cancel_requested) of the job, read from the latest committed row."""
		return self._execute(
			"SELECT status, attempt, cancel_requested FROM `tabBackground Job` WHERE name = %s",
			(self.job,),
			fetch=True,
		)

	def _close_unlocked(self):
		if self._conn is not None:
			try:
				self._conn.close()
			except Exception:
				pass
			self._conn = None

	def close(self):
		with self._lock:
			self._close_unlocked()
