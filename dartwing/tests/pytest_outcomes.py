"""A pytest plugin that writes each test's outcome for ``test_pytest_suites`` (the run-tests bridge).

Contract: with ``DARTWING_PYTEST_OUTCOMES`` naming a file, every test report and every collection
error is appended to it as one JSON line ``{"nodeid", "when", "outcome", "longrepr"}`` as it
happens, so a run that dies half-way still leaves what it did. Without that variable it does nothing.
"""

import json
import os


def _write(nodeid: str, when: str, outcome: str, longrepr) -> None:
	path = os.environ.get("DARTWING_PYTEST_OUTCOMES")
	if not path:
		return
	line = json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome, "longrepr": str(longrepr or "")})
	with open(path, "a") as outcomes:
		outcomes.write(line + "\n")


def pytest_runtest_logreport(report):
	if report.when == "call" or report.outcome != "passed":
		_write(report.nodeid, report.when, report.outcome, report.longrepr)


def pytest_collectreport(report):
	if report.failed:
		_write(report.nodeid or "collection", "collect", "failed", report.longrepr)
