"""A second database connection for a running job's out-of-band writes.

Contract: progress, checkpoints, heartbeats and the ``worker_stopping`` mark of a running job are written and committed on
this connection, so they are visible at once without committing (or being rolled back with)
the handler's own transaction on ``frappe.db``. Every write is guarded by the job's name, status
``Running``, attempt and RQ token, so a worker that lost the job cannot touch a later attempt.
It is thread-safe (the watchdog thread and the handler share it) and uses no ``frappe.local``
after construction, so it may be used from threads that Frappe does not know about. Each of
these writes is a heartbeat: ``heartbeat`` (site time, the ``now`` given, for people) and
``heartbeat_utc`` (``clock.utc_now()``, what the reaper compares). A call gives up after
``IO_TIMEOUT_SECONDS`` (a lock wait, a stalled server) with ``OperationalError``; ``close()``
never waits for a call in progress.

``kill_connection(connection_id)`` ends another connection of the site's database user (and so
rolls back its transaction) from a fresh connection: how a handler that cannot be stopped loses
its uncommitted work.
"""

import threading

import frappe
import pymysql
from pymysql.constants import CLIENT

from dartwing.dartwing_core.background_jobs import clock

IO_TIMEOUT_SECONDS = 10
KILL_TIMEOUT_SECONDS = 2


def connection_params(timeout: float = IO_TIMEOUT_SECONDS) -> dict:
	"""pymysql arguments for the current site's database, autocommit, with bounded waits."""
	conf = frappe.conf
	params = {
		"user": conf.db_user or conf.db_name,
		"password": conf.db_password,
		"database": conf.db_name,
		"charset": "utf8mb4",
		"autocommit": True,
		"connect_timeout": max(int(timeout), 1),
		"read_timeout": timeout,
		"write_timeout": timeout,
		# rowcount = rows matched, not rows changed: a guarded write that matched is not "lost".
		"client_flag": CLIENT.FOUND_ROWS,
	}
	if conf.db_socket:
		params["unix_socket"] = conf.db_socket
	else:
		params["host"] = conf.db_host or "127.0.0.1"
		params["port"] = int(conf.db_port or 3306)
	return params


def kill_connection(params: dict, connection_id: int) -> None:
	"""``KILL CONNECTION`` (the server rolls back its open transaction), on a connection of its own."""
	connection = pymysql.connect(
		**{**params, "connect_timeout": KILL_TIMEOUT_SECONDS, "read_timeout": KILL_TIMEOUT_SECONDS}
	)
	try:
		with connection.cursor() as cursor:
			cursor.execute("KILL CONNECTION %s", (int(connection_id),))
	finally:
		connection.close()


class SideChannel:
	def __init__(self, job: str, attempt: int, rq_job_id: str | None = None):
		self.job = job
		self.attempt = attempt
		self.rq_job_id = rq_job_id
		self.params = connection_params()
		self._conn = None
		self._closed = False
		self._lock = threading.Lock()

	def _execute(self, query: str, args: tuple, fetch: bool = False):
		with self._lock:
			try:
				for attempt in (1, 2):
					try:
						if self._conn is None:
							self._conn = pymysql.connect(**self.params)
						with self._conn.cursor() as cursor:
							cursor.execute(query, args)
							return cursor.fetchone() if fetch else cursor.rowcount
					except pymysql.err.OperationalError:
						self._close_unlocked()
						if attempt == 2:
							raise
			finally:
				if self._closed:
					self._close_unlocked()

	def _guarded_update(self, assignments: str, args: tuple) -> bool:
		return bool(
			self._execute(
				f"""UPDATE `tabBackground Job` SET {assignments}
				WHERE name = %s AND status = 'Running' AND attempt = %s AND rq_job_id <=> %s""",
				(*args, self.job, self.attempt, self.rq_job_id),
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

	def mark_stopping(self, now) -> bool:
		"""The job's worker was told to stop (``worker_stop``): the reaper may act on its silence at once."""
		return self._guarded_update(
			"worker_stopping = 1, heartbeat = %s, heartbeat_utc = %s", (now, clock.utc_now())
		)

	def poll(self) -> tuple[bool, bool] | None:
		"""(still this worker's: Running on this attempt and token, cancel requested), read from the
		latest committed row; ``None`` if the job is gone."""
		row = self._execute(
			"SELECT status, attempt, rq_job_id, cancel_requested FROM `tabBackground Job` WHERE name = %s",
			(self.job,),
			fetch=True,
		)
		if row is None:
			return None
		status, attempt, rq_job_id, cancel_requested = row
		owned = status == "Running" and attempt == self.attempt and rq_job_id == self.rq_job_id
		return owned, bool(cancel_requested)

	def _close_unlocked(self):
		if self._conn is not None:
			try:
				self._conn.close()
			except Exception:
				pass
			self._conn = None

	def close(self):
		"""Close now, or (if a call is in progress, e.g. stuck in a lock wait) when it returns."""
		self._closed = True
		if self._lock.acquire(timeout=0.2):
			try:
				self._close_unlocked()
			finally:
				self._lock.release()
