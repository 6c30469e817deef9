"""What ``bench --site SITE run-tests --app dartwing`` runs: Dartwing's pytest suites, test by test.

Frappe v15's runner is unittest's: it imports every ``test_*.py`` of the app and runs the
TestCases it finds, so on its own it would find none of Dartwing's tests (pytest functions with
fixtures that start real workers and servers). Through unittest's ``load_tests`` protocol this
module hands it a suite that runs ``dartwing/tests/unit`` and then ``dartwing/tests/integration``
with pytest, in a child process on the same site (``DARTWING_SITE``), and reports every pytest
test as one unittest test with pytest's outcome: a failure or an error in setup, call or teardown
fails it, a skip skips it. A pytest run that ends abnormally (interrupted, internal error, usage
error, or no test collected when no filter was given) counts as one more failed test. So
``run-tests`` counts Dartwing's real tests and, with ``CI`` set, exits non-zero when one fails.

``DARTWING_TEST_ARGS`` adds pytest arguments (shell-quoted, e.g. ``"-k dedup"``);
``DARTWING_PYTEST_PATHS`` (``os.pathsep``-separated) replaces the two suites' paths.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import unittest

import frappe

OUTCOMES_PLUGIN = "dartwing.tests.pytest_outcomes"
# pytest's exit codes: 0 all passed, 1 some failed, 5 none collected; others mean the run broke.
PYTEST_OK, PYTEST_FAILED, PYTEST_NO_TESTS = 0, 1, 5


def suite_paths() -> list[str]:
	if configured := os.environ.get("DARTWING_PYTEST_PATHS"):
		return [path for path in configured.split(os.pathsep) if path]
	tests = os.path.join(frappe.get_app_path("dartwing"), "tests")
	return [os.path.join(tests, "unit"), os.path.join(tests, "integration")]


class PytestTest(unittest.TestCase):
	"""One pytest test, replaying the outcome pytest gave it."""

	__test__ = False  # for pytest: this is not a test of its own

	def __init__(self, nodeid: str, outcome: str, details: str):
		super().__init__("replay")
		self.nodeid, self.outcome, self.details = nodeid, outcome, details

	def id(self) -> str:
		return self.nodeid

	def __str__(self) -> str:
		return self.nodeid

	def shortDescription(self):
		return None

	def replay(self):
		if self.outcome == "skipped":
			self.skipTest(self.details)
		if self.outcome != "passed":
			self.fail(f"{self.nodeid} {self.outcome} under pytest:\n{self.details}")


def merge(lines: list[dict]) -> dict[str, tuple[str, str]]:
	"""Each test's outcome over its phases: failed if any phase failed, else skipped, else passed."""
	severity = {"passed": 0, "skipped": 1, "failed": 2}
	outcomes: dict[str, tuple[str, str]] = {}
	ranks: dict[str, int] = {}
	for line in lines:
		nodeid, outcome = line["nodeid"], line["outcome"]
		rank = severity.get(outcome, 2)
		if nodeid in ranks and rank <= ranks[nodeid]:
			continue
		if outcome == "failed" and line["when"] not in ("call", "collect"):
			outcome = f"error in {line['when']}"
		ranks[nodeid], outcomes[nodeid] = rank, (outcome, line["longrepr"])
	return outcomes


def run_pytest(path: str, extra: list[str]) -> tuple[int, dict[str, tuple[str, str]]]:
	with tempfile.NamedTemporaryFile("r", suffix=".jsonl", prefix="dartwing-outcomes-") as record:
		command = [sys.executable, "-m", "pytest", path, "-p", OUTCOMES_PLUGIN, "-p", "no:cacheprovider"]
		command += ["-q", "-ra", "--durations=5", *extra]
		env = {
			**os.environ,
			"DARTWING_SITE": frappe.local.site,
			"DARTWING_SITES_PATH": os.path.abspath(frappe.local.sites_path),
			"DARTWING_PYTEST_OUTCOMES": record.name,
			"PYTHONUNBUFFERED": "1",
		}
		print(f"\n==> pytest {path} {shlex.join(extra)}", flush=True)
		returncode = subprocess.call(command, cwd=os.path.abspath(frappe.local.sites_path), env=env)
		lines = [json.loads(line) for line in record.read().splitlines() if line.strip()]
	return returncode, merge(lines)


class PytestSuites(unittest.TestSuite):
	def run(self, result, debug=False):
		extra = shlex.split(os.environ.get("DARTWING_TEST_ARGS", ""))
		# Nothing of this process's transaction may hold locks the tests' processes need.
		frappe.db.commit()
		for path in suite_paths():
			returncode, outcomes = run_pytest(path, extra)
			tests = [PytestTest(nodeid, *outcome) for nodeid, outcome in outcomes.items()]
			broken = returncode not in (PYTEST_OK, PYTEST_FAILED, PYTEST_NO_TESTS) or (
				returncode == PYTEST_NO_TESTS and not extra
			)
			if broken or (
				returncode == PYTEST_FAILED and all(t.outcome in ("passed", "skipped") for t in tests)
			):
				tests.append(PytestTest(f"pytest {path}", f"exited with status {returncode}", ""))
			for test in tests:
				if result.shouldStop:
					return result
				test(result)
		return result


def load_tests(loader, standard_tests, pattern):
	return PytestSuites()
