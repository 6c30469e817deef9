"""Demo handlers and a demo precondition, registered in Dartwing's hooks.

Contract:
- ``demo_sleep``: ``seconds`` (default 5) split into ``steps`` (default 5); reports progress each
  step (``message``, if given, leads each progress message) and honours cancel. With
  ``checkpoint: true`` it resumes after a retry from the last finished step. ``ignore_cancel: true`` sleeps without ever checking (to show the forced stop).
  ``note: "text"`` first writes a ToDo "text attempt N" in the handler's transaction: it commits
  with the job's outcome, or not at all. ``mask_alarm: true`` sleeps with SIGALRM blocked, like a
  call into C that cannot be interrupted: the engine has to end the work horse.
- ``demo_echo``: returns its parameters.
- ``demo_fail``: fails ``fail_times`` times (default 1) with ``error`` = transient | permanent |
  http_401 | http_403 | http_403_rate_limited | http_429 | timeout, then succeeds; ``detail`` is
  added to the error message. Runs handed back without counting an attempt (a restart) are not
  failures: it counts ``ctx.attempt - ctx.recoveries``. ``seconds`` first works that long,
  checking for cancel and interruption every tenth of a second.
  ``retry_after`` (seconds) goes into the 429 / rate-limit headers.
- ``demo_http``: one GET to ``url`` (loopback only: it is a demo) with an optional bearer
  ``token``; an error status raises ``HttpError`` with the answer's headers.
- precondition ``demo_token_check``: GET ``token_check_url`` (loopback only) with the bearer
  ``token``: 2xx accepts, 401/403 refuses; it has its own timeout like any precondition.
"""

import signal
import time
from urllib.parse import urlparse

from dartwing.dartwing_core.background_jobs.handler_errors import HttpError, PermanentError, TransientError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def demo_sleep(ctx):
	seconds = float(ctx.parameters.get("seconds", 5))
	steps = max(int(ctx.parameters.get("steps", 5)), 1)
	ignore_cancel = bool(ctx.parameters.get("ignore_cancel"))
	first_step = int(ctx.checkpoint.get("step", 0)) if ctx.parameters.get("checkpoint") else 0
	if ctx.parameters.get("note"):
		_write_note(f"{ctx.parameters['note']} attempt {ctx.attempt}")
	masked = {signal.SIGALRM} if ctx.parameters.get("mask_alarm") else set()
	signal.pthread_sigmask(signal.SIG_BLOCK, masked)
	try:
		for step in range(first_step, steps):
			time.sleep(seconds / steps)
			if ignore_cancel:
				continue
			label = f"step {step + 1} of {steps}"
			ctx.progress(
				(step + 1) * 100 / steps,
				f"{ctx.parameters['message']} {label}" if ctx.parameters.get("message") else label,
			)
			if ctx.parameters.get("checkpoint"):
				ctx.checkpoint({"step": step + 1})
	finally:
		signal.pthread_sigmask(signal.SIG_UNBLOCK, masked)
	return {"slept": seconds, "steps": steps, "resumed_from": first_step}


def _write_note(text: str) -> None:
	import frappe

	frappe.get_doc({"doctype": "ToDo", "description": text}).insert(ignore_permissions=True)


def demo_echo(ctx):
	return ctx.parameters


def _rate_limit_headers(retry_after: float) -> dict:
	return {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time() + retry_after))}


def demo_fail(ctx):
	fail_times = int(ctx.parameters.get("fail_times", 1))
	working_until = time.monotonic() + float(ctx.parameters.get("seconds", 0))
	while time.monotonic() < working_until:
		time.sleep(0.1)
		ctx.raise_if_canceled()
	if ctx.attempt - ctx.recoveries > fail_times:
		return {"succeeded_on_attempt": ctx.attempt}
	error = ctx.parameters.get("error", "transient")
	retry_after = ctx.parameters.get("retry_after")
	message = f"demo_fail attempt {ctx.attempt}: {error}"
	if ctx.parameters.get("detail"):
		message += f" {ctx.parameters['detail']}"
	if error == "transient":
		raise TransientError(message)
	if error == "permanent":
		raise PermanentError(message)
	if error == "http_401":
		raise HttpError(401, message)
	if error == "http_403":
		raise HttpError(403, message)
	if error == "http_403_rate_limited":
		raise HttpError(403, message, _rate_limit_headers(float(retry_after or 1)))
	if error == "http_429":
		raise HttpError(429, message, {"Retry-After": str(retry_after)} if retry_after is not None else {})
	if error == "timeout":
		time.sleep(float(ctx.parameters.get("sleep", 3600)))
		return {"woke_up": True}
	raise PermanentError(f"demo_fail does not know error {error!r}")


def _loopback_url(url: str | None) -> str:
	if (
		not url
		or urlparse(url).hostname not in LOOPBACK_HOSTS
		or urlparse(url).scheme not in ("http", "https")
	):
		raise PermanentError("demo jobs only call http(s) URLs on this machine (127.0.0.1 / localhost)")
	return url


def _bearer(token: str | None) -> dict:
	return {"Authorization": f"Bearer {token}"} if token else {}


def demo_http(ctx):
	import requests  # imported here: every work horse would otherwise pay for it

	url = _loopback_url(ctx.parameters.get("url"))
	response = requests.get(
		url,
		headers=_bearer(ctx.parameters.get("token")),
		timeout=float(ctx.parameters.get("timeout", 10)),
		allow_redirects=False,  # a redirect must not lead off this machine
	)
	if response.status_code >= 400:
		raise HttpError.from_response(response)
	return {"status_code": response.status_code, "body": response.text[:1000]}


def demo_token_check(parameters: dict, user: str, organization: str):
	import requests

	url = _loopback_url(parameters.get("token_check_url"))
	try:
		response = requests.get(
			url, headers=_bearer(parameters.get("token")), timeout=30, allow_redirects=False
		)
	except requests.RequestException as exc:
		raise TransientError(str(exc))
	if response.status_code in (401, 403):
		return f"the token was refused (HTTP {response.status_code})"
	if response.status_code >= 400:
		raise TransientError(f"token check answered HTTP {response.status_code}")
	return True


DEMO_ORGANIZATION = "Dartwing Demo"


def ensure_demo_organization(user: str) -> str:
	"""The organization the ``bench ... dartwing demo`` command submits to, with ``user`` a member."""
	import frappe

	if not frappe.db.exists("Organization", DEMO_ORGANIZATION):
		frappe.get_doc(
			{"doctype": "Organization", "organization_name": DEMO_ORGANIZATION, "status": "Active"}
		).insert(ignore_permissions=True)
	org = frappe.get_doc("Organization", DEMO_ORGANIZATION)
	if user != "Administrator" and user not in {member.user for member in org.members}:
		org.append("members", {"user": user})
		org.save(ignore_permissions=True)
	return DEMO_ORGANIZATION
