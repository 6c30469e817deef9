"""``bench --site S dartwing ...``: the engine from the terminal.

Every command runs on one site as a user (``--user``, default Administrator) through the same
engine functions as the HTTP API, so the same checks and permissions apply.
"""

import json
import sys
import time

import click
from frappe.commands import get_site, pass_context


def _connect(context, user: str):
	import frappe

	site = get_site(context)
	frappe.init(site=site)
	frappe.connect()
	frappe.set_user(user)


def _print(value) -> None:
	click.echo(json.dumps(value, indent=1, default=str))


def _run(context, user: str, action):
	"""Run ``action()`` on the site as ``user``, commit, print its answer; errors exit 1."""
	import frappe

	_connect(context, user)
	try:
		answer = action()
		frappe.db.commit()
	except Exception as exc:
		frappe.db.rollback()
		message = frappe.utils.strip_html_tags(str(exc)) or type(exc).__name__
		click.secho(f"Error: {message}", fg="red", err=True)
		sys.exit(1)
	finally:
		frappe.destroy()
	return answer


user_option = click.option("--user", default="Administrator", show_default=True, help="Act as this user")


@click.group("dartwing")
def dartwing():
	"""Dartwing background jobs: submit, follow, cancel, retry, pause."""


@dartwing.command("submit")
@click.argument("job_type")
@click.option("--parameters", "-p", default=None, help="JSON object, e.g. '{\"seconds\": 3}'")
@click.option("--organization", "-o", default=None)
@click.option("--priority", type=click.Choice(["Low", "Normal", "High", "Critical"]), default=None)
@click.option("--depends-on", default=None, help="Comma-separated parent job ids")
@click.option("--run-at", default=None, help="Start no earlier than this date and time")
@click.option("--strict", is_flag=True, help="Refuse a duplicate instead of returning it")
@user_option
@pass_context
def submit_command(context, job_type, parameters, organization, priority, depends_on, run_at, strict, user):
	"""Submit a job of JOB_TYPE."""
	from dartwing.dartwing_core.background_jobs import submit

	_print(
		_run(
			context,
			user,
			lambda: submit.submit(
				job_type,
				parameters=parameters,
				organization=organization,
				priority=priority,
				depends_on=depends_on,
				run_at=run_at,
				strict=strict,
			),
		)
	)


@dartwing.command("status")
@click.argument("job_id")
@user_option
@pass_context
def status_command(context, job_id, user):
	"""Show a job's status, progress, result or error."""
	from dartwing.dartwing_core.background_jobs import job_views

	_print(_run(context, user, lambda: job_views.status_view(job_views.get_readable_job(job_id))))


@dartwing.command("list")
@click.option("--status", default=None, help="One status or several, comma-separated")
@click.option("--job-type", default=None)
@click.option("--organization", "-o", default=None)
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@user_option
@pass_context
def list_command(context, status, job_type, organization, limit, offset, user):
	"""List jobs, newest first."""
	from dartwing.dartwing_core.background_jobs import job_views

	answer = _run(
		context,
		user,
		lambda: job_views.list_view(status, job_type, organization, None, None, limit, offset),
	)
	click.echo(f"{answer['total']} jobs; showing {len(answer['jobs'])} from {answer['offset']}")
	for job in answer["jobs"]:
		click.echo(
			f"{job['job_id']:<18} {job['status']:<12} {job['job_type']:<20} {job['organization']:<16} "
			f"{int(job['progress_percent'] or 0):>3}%  {job['creation']}"
		)


@dartwing.command("cancel")
@click.argument("job_id")
@user_option
@pass_context
def cancel_command(context, job_id, user):
	"""Cancel a job (a running one stops at its next check, or after the grace period)."""
	from dartwing.dartwing_core.api import jobs

	_print(_run(context, user, lambda: jobs.cancel_job(job_id)))


@dartwing.command("retry")
@click.argument("job_id")
@click.option("--parameters", "-p", default=None, help="Edited parameters as a JSON object")
@user_option
@pass_context
def retry_command(context, job_id, parameters, user):
	"""Retry a Failed, Timed Out or Dead Letter job (managers)."""
	from dartwing.dartwing_core.api import jobs

	_print(_run(context, user, lambda: jobs.retry_job(job_id, parameters)))


@dartwing.command("stats")
@click.option("--organization", "-o", default=None)
@click.option("--job-type", default=None)
@click.option("--since", default=None, help="Count jobs created since (default: the last 24 hours)")
@user_option
@pass_context
def stats_command(context, organization, job_type, since, user):
	"""Queue statistics and job metrics."""
	from dartwing.dartwing_core.background_jobs import metrics
	from dartwing.dartwing_core.background_jobs.permissions import is_manager

	def collect():
		answer = {"metrics": metrics.job_metrics(organization, job_type, since)}
		if is_manager():
			answer["queues"] = metrics.queue_stats()
		return answer

	answer = _run(context, user, collect)
	if "queues" in answer:
		_echo_upkeep(answer["queues"]["upkeep"])
	counts = answer["metrics"]["counts_by_status"]
	click.echo("  ".join(f"{status}: {count}" for status, count in counts.items()))
	for row in answer.get("queues", {}).get("queues", []):
		click.echo(
			f"{row['queue']:<10} {row['job_type']:<20} waiting {row['waiting']:>5}  active {row['active']:>4}"
			f"  delayed {row['delayed']:>4}  retrying {row['retrying']:>4}  failed {row['failed']:>5}"
			f"  completed {row['completed']:>6}{'  PAUSED' if row['paused'] else ''}"
		)
	for row in answer["metrics"]["job_types"]:
		run = row["run_time"]
		click.echo(
			f"{row['job_type']:<20} jobs {row['jobs']:>6}  failure rate {row['failure_rate']:.1%}"
			f"  run p50 {_seconds(run['p50'])}  p95 {_seconds(run['p95'])}"
		)
	click.echo(
		f"throughput {answer['metrics']['throughput_per_minute']}/min  "
		f"workers busy {answer['metrics']['workers']['busy']}, registered {answer['metrics']['workers']['registered']}"
	)


def _echo_upkeep(state: dict) -> None:
	age = state["upkeep_last_pass_age_seconds"]
	click.echo(
		f"upkeep: last pass {'never' if age is None else f'{age:.1f}s ago'}"
		f"{'' if state['upkeep_alive'] else ' (NOT RUNNING)'}; "
		f"scheduler: {'active' if state['scheduler_active'] else 'OFF'}"
	)
	for warning in state["warnings"]:
		click.secho(f"WARNING: {warning}", fg="yellow")


def _seconds(value) -> str:
	return "-" if value is None else f"{value:.3f}s"


def _pause_options(fn):
	fn = click.option("--queue", default=None)(fn)
	return click.option("--job-type", default=None)(fn)


@dartwing.command("pause")
@_pause_options
@user_option
@pass_context
def pause_command(context, queue, job_type, user):
	"""Pause a queue or a job type: its waiting jobs do not start; running ones finish."""
	from dartwing.dartwing_core.api import jobs

	_print(_run(context, user, lambda: jobs.pause_queue(queue=queue, job_type=job_type)))


@dartwing.command("resume")
@_pause_options
@user_option
@pass_context
def resume_command(context, queue, job_type, user):
	"""Resume a paused queue or job type."""
	from dartwing.dartwing_core.api import jobs

	_print(_run(context, user, lambda: jobs.resume_queue(queue=queue, job_type=job_type)))


@dartwing.command("demo")
@click.option("--jobs", "job_count", default=3, show_default=True, help="How many demo_sleep jobs")
@click.option("--seconds", default=5.0, show_default=True, help="How long each one sleeps")
@click.option("--organization", "-o", default=None, help="Default: a 'Dartwing Demo' organization")
@click.option("--timeout", default=120, show_default=True, help="Stop following after this many seconds")
@user_option
@pass_context
def demo_command(context, job_count, seconds, organization, timeout, user):
	"""Submit a few demo_sleep jobs and follow their progress (needs a running worker)."""
	import frappe

	from dartwing.dartwing_core.background_jobs import demo, states, submit

	def start():
		org = organization or demo.ensure_demo_organization(frappe.session.user)
		return [
			submit.submit(
				"demo_sleep",
				parameters={"seconds": seconds, "steps": 10, "run": run, "at": time.time()},
				organization=org,
			)["job_id"]
			for run in range(job_count)
		]

	job_ids = _run(context, user, start)
	click.echo(f"Submitted {', '.join(job_ids)}; following their progress (Ctrl+C stops following)")
	_connect(context, user)
	redraw = sys.stdout.isatty()
	deadline = time.monotonic() + timeout
	shown: list[str] = []
	try:
		while time.monotonic() < deadline:
			frappe.db.rollback()  # a fresh snapshot on every poll
			rows = frappe.get_all(
				"Background Job",
				filters={"name": ("in", job_ids)},
				fields=["name", "status", "progress_percent", "progress_message"],
				order_by="name",
			)
			lines = [_progress_line(row) for row in rows]
			if lines != shown:
				if redraw and shown:
					click.echo(f"\x1b[{len(shown)}F", nl=False)  # back to the first bar, draw over it
				for line in (
					lines if redraw or not shown else [changed for changed in lines if changed not in shown]
				):
					click.echo(f"{line}\x1b[K" if redraw else line)
				shown = lines
			if rows and all(row.status in states.TERMINAL for row in rows):
				break
			time.sleep(0.5)
		else:
			click.secho("Still running; is a worker up? (bench worker or bench start)", fg="yellow")
	finally:
		frappe.destroy()


def _progress_line(row) -> str:
	width = 30
	filled = int(width * (row.progress_percent or 0) / 100)
	bar = "#" * filled + "-" * (width - filled)
	return f"{row.name:<18} [{bar}] {int(row.progress_percent or 0):>3}% {row.status:<10} {row.progress_message or ''}"


@dartwing.command("upkeep")
@click.option(
	"--only",
	multiple=True,
	help="Serve only this site (repeatable). Default: every site of the bench that has dartwing",
)
def upkeep_command(only):
	"""Keep due work on time: retries, run_at, schedules and recovery of dead workers, every half
	second, without Frappe's scheduler or a worker. bench start runs it (Procfile); in production run
	it under supervisor or systemd (README)."""
	import signal
	import threading

	from dartwing.dartwing_core.background_jobs import upkeep

	stop = threading.Event()
	for signum in (signal.SIGTERM, signal.SIGINT):
		signal.signal(signum, lambda *_: stop.set())
	upkeep.run_forever(".", list(only) or None, stop)


commands = [dartwing]

# Frappe imports every app's commands before running any bench command, ``bench worker`` included.
WORKER_COMMANDS = ("worker", "worker-pool")


def preload_for_work_horses() -> None:
	"""Load the engine's work horse code (and Frappe's document classes, which a job's Job Type
	needs) in a worker's own process before it forks: each work horse it forks starts with them
	instead of importing them (about 12 ms of submit to start a horse)."""
	import frappe.model.document

	import dartwing.dartwing_core.background_jobs.executor


if any(command in sys.argv[1:] for command in WORKER_COMMANDS):
	preload_for_work_horses()
