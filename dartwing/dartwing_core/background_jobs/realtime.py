"""Realtime events for jobs, over Frappe's Socket.IO server.

Contract: events go to the job's document room (``doc:Background Job/<name>``, whose members
Frappe's socketio server admits only if they can read the job) and to the job owner's user room;
never site-wide, so nobody receives events of a job they cannot read.
- ``job_progress``: sent at once (not after commit): the handler's transaction is still open;
  ``sent_at`` is the worker's clock (epoch seconds) when it was sent.
- ``job_status_changed``: sent after the transition's transaction commits, all of one
  transaction's in one Redis pipeline (``after_commit_redis``; a retry tick may queue thousands of
  jobs at once), as
  Frappe's ``publish_realtime(..., after_commit=True)`` would send them one by one; dropped on
  rollback.
"""

import json
import time

import frappe
from frappe.realtime import get_doc_room, get_user_room

from dartwing.dartwing_core.background_jobs import after_commit_redis

PROGRESS_EVENT = "job_progress"
STATUS_EVENT = "job_status_changed"
DOCTYPE = "Background Job"


def _publish(event: str, message: dict, job: str, owner: str | None, after_commit: bool) -> None:
	frappe.publish_realtime(event, message, doctype=DOCTYPE, docname=job, after_commit=after_commit)
	if owner and owner != "Guest":
		frappe.publish_realtime(event, message, user=owner, after_commit=after_commit)


def publish_progress(job: str, owner: str | None, percent: float, message: str | None) -> None:
	_publish(
		PROGRESS_EVENT,
		{"job_id": job, "progress_percent": percent, "progress_message": message, "sent_at": time.time()},
		job,
		owner,
		False,
	)


def publish_status(job: str, owner: str | None, from_status: str | None, to_status: str, event: str) -> None:
	message = {"job_id": job, "from_status": from_status, "status": to_status, "event": event}
	rooms = [get_doc_room(DOCTYPE, job)]
	if owner and owner != "Guest":
		rooms.append(get_user_room(owner))
	# The envelope Frappe's emit_via_redis publishes; its socketio server routes it to the room.
	site = frappe.local.site
	envelopes = [
		json.dumps({"event": STATUS_EVENT, "message": message, "room": room, "namespace": site})
		for room in rooms
	]
	after_commit_redis.add(lambda pipe: _publish_envelopes(pipe, envelopes))


def _publish_envelopes(pipe, envelopes: list[str]) -> None:
	for envelope in envelopes:
		pipe.publish("events", envelope)
