import pytest

from dartwing.dartwing_core.background_jobs import states

SPEC_TABLE = {
	"Pending": {"Queued", "Canceled", "Failed"},
	"Queued": {"Running", "Pending", "Canceled", "Queued"},
	"Running": {"Completed", "Retrying", "Failed", "Timed Out", "Dead Letter", "Canceled"},
	"Retrying": {"Queued", "Canceled"},
	"Failed": {"Queued"},
	"Timed Out": {"Queued"},
	"Dead Letter": {"Queued"},
	"Completed": set(),
	"Canceled": set(),
}


@pytest.mark.parametrize("source", states.STATUSES)
@pytest.mark.parametrize("target", states.STATUSES)
def test_table_matches_the_spec_exactly(source, target):
	assert states.can_transition(source, target) == (target in SPEC_TABLE[source])


def test_illegal_transition_raises_a_clear_error():
	with pytest.raises(states.IllegalTransition, match="cannot go from Completed to Running"):
		states.check_transition("Completed", "Running")
	states.check_transition("Running", "Completed")


def test_terminal_and_active_partition_the_statuses():
	assert states.TERMINAL | states.ACTIVE == set(states.STATUSES)
	assert not states.TERMINAL & states.ACTIVE
	assert states.TERMINAL == {"Completed", "Failed", "Timed Out", "Dead Letter", "Canceled"}
	for status in states.TERMINAL - states.RETRYABLE_BY_MANAGER:
		assert not states.TRANSITIONS[status]


def test_sources_of():
	assert states.sources_of("Running") == {"Queued"}
	assert states.sources_of("Queued") == {
		"Pending",
		"Queued",
		"Retrying",
		"Failed",
		"Timed Out",
		"Dead Letter",
	}


@pytest.mark.parametrize(
	"source,target,event",
	[
		("Pending", "Queued", "Queued"),
		("Queued", "Running", "Started"),
		("Running", "Completed", "Completed"),
		("Running", "Retrying", "Retry Scheduled"),
		("Running", "Dead Letter", "Dead Lettered"),
		("Queued", "Pending", "Paused"),
		("Retrying", "Queued", "Requeued"),
		("Pending", "Canceled", "Canceled"),
		("Running", "Canceled", "Canceled"),
	],
)
def test_default_events(source, target, event):
	assert states.event_for(source, target) == event


def test_event_names_are_the_options_of_the_log_doctype():
	import json
	from pathlib import Path

	doctype = Path(states.__file__).parents[1] / "doctype" / "job_execution_log" / "job_execution_log.json"
	(event,) = (f for f in json.loads(doctype.read_text())["fields"] if f["fieldname"] == "event")
	assert tuple(event["options"].split("\n")) == states.EVENTS
	legal_moves = [(a, b) for a in states.STATUSES for b in states.STATUSES if states.can_transition(a, b)]
	assert {states.event_for(a, b) for a, b in legal_moves} <= set(states.EVENTS)


def test_failed_statuses_are_terminal_and_retryable_by_a_manager():
	assert set(states.FAILED_STATUSES) <= states.TERMINAL
	assert set(states.FAILED_STATUSES) == states.RETRYABLE_BY_MANAGER
	assert states.COMPLETED not in states.FAILED_STATUSES and states.CANCELED not in states.FAILED_STATUSES
