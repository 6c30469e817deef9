"""Realtime over the site's real Socket.IO server: owners receive their jobs' progress and status
changes within a second, and nobody receives events of a job they cannot read."""

import threading
import time

import frappe
import pytest
import socketio

from dartwing.tests.integration import helpers


class Listener:
	"""A python-socketio client logged in as a user, recording job events as they arrive."""

	def __init__(self, live, session):
		self.events: list[tuple[float, str, dict]] = []
		self.lock = threading.Lock()
		self.namespace = f"/{live.site}"
		self.client = socketio.Client(reconnection=False)
		for event in ("job_progress", "job_status_changed"):
			self.client.on(event, self._recorder(event), namespace=self.namespace)
		self.client.connect(
			f"http://127.0.0.1:{live.socketio_port}",
			namespaces=[self.namespace],
			transports=["polling"],
			headers={
				"Origin": live.url,
				"X-Frappe-Site-Name": live.site,
				"Cookie": f"sid={session.cookies['sid']}",
			},
			wait_timeout=10,
		)

	def _recorder(self, event):
		def record(data):
			with self.lock:
				self.events.append((time.time(), event, data))

		return record

	def subscribe(self, job_id: str) -> None:
		self.client.emit("doc_subscribe", ("Background Job", job_id), namespace=self.namespace)

	def of_job(self, job_id: str, event: str | None = None) -> list[tuple[float, str, dict]]:
		with self.lock:
			return [
				e for e in self.events if e[2].get("job_id") == job_id and (event is None or e[1] == event)
			]

	def close(self):
		self.client.disconnect()


@pytest.fixture
def two_orgs(live):
	org_a, user_a = helpers.make_org_with_user()
	org_b, user_b = helpers.make_org_with_user()
	yield frappe._dict(org_a=org_a, org_b=org_b, a=live.session(user_a), b=live.session(user_b))
	helpers.cleanup_org(org_a)
	helpers.cleanup_org(org_b)


def submit(live, session, organization, **parameters) -> str:
	response = live.call(
		session, "POST", "submit_job", job_type="demo_sleep", organization=organization, parameters=parameters
	)
	assert response.status_code == 200, response.text
	return response.json()["message"]["job_id"]


def test_owner_gets_progress_and_status_live_and_other_orgs_get_nothing(live, two_orgs):
	listener_a, listener_b = Listener(live, two_orgs.a), Listener(live, two_orgs.b)
	try:
		job_a = submit(live, two_orgs.a, two_orgs.org_a, seconds=2, steps=4)
		job_b = submit(live, two_orgs.b, two_orgs.org_b, seconds=0.4, steps=2)
		# B tries to join A's document room too: the server asks the site, which says no.
		listener_b.subscribe(job_a)
		listener_a.subscribe(job_a)
		time.sleep(0.5)

		progress_seen_while_running = []
		with helpers.Worker():
			deadline = time.monotonic() + 60
			while time.monotonic() < deadline and not (helpers.terminal(job_a) and helpers.terminal(job_b)):
				status = live.call(two_orgs.a, "GET", "get_job_status", job_id=job_a).json()["message"]
				if status["status"] == "Running" and status["progress_percent"]:
					progress_seen_while_running.append(status["progress_percent"])
				time.sleep(0.1)
			# the last events are pushed after their commits
			helpers.wait_for(
				lambda: any(
					e[2].get("status") == "Completed" for e in listener_a.of_job(job_a, "job_status_changed")
				),
				timeout=10,
				message="the Completed event",
			)

		assert helpers.job(job_a).status == "Completed"
		progress = listener_a.of_job(job_a, "job_progress")
		assert {round(e[2]["progress_percent"]) for e in progress} >= {25, 50, 75, 100}
		assert progress_seen_while_running, "get_job_status showed no progress while the job ran"

		statuses = [e[2]["status"] for e in listener_a.of_job(job_a, "job_status_changed")]
		assert "Running" in statuses and statuses[-1] == "Completed"

		delays = [received - data["sent_at"] for received, _, data in progress]
		assert max(delays) < 1.0, f"progress took {max(delays):.3f} s to arrive"

		assert listener_b.of_job(job_a) == [], "a member of another organization received A's events"
		assert listener_a.of_job(job_b) == [], "A received B's events"
		assert [e[2]["status"] for e in listener_b.of_job(job_b, "job_status_changed")][-1] == "Completed"
	finally:
		listener_a.close()
		listener_b.close()
