"""``bench --site SITE run-tests`` runs Dartwing's pytest suites through ``dartwing/tests/test_pytest_suites.py``
and fails when one of their tests fails. Run here on small suites written by the test (the real
ones would run this test again)."""

import os
import subprocess
import textwrap

import frappe

from dartwing.processes import frappe_cli
from dartwing.tests.integration import helpers

SAMPLE = """
import pytest


@pytest.fixture
def broken():
	raise RuntimeError("fixture broke")


def test_passes():
	assert 1 + 1 == 2


def test_fails():
	assert "actual" == "expected"


def test_is_skipped():
	pytest.skip("not on this machine")


def test_errors_in_setup(broken):
	pass
"""


def run_tests(suite_dir, *extra: str) -> subprocess.CompletedProcess:
	env = {**os.environ, "CI": "true", "DARTWING_PYTEST_PATHS": str(suite_dir)}
	env.pop("DARTWING_TEST_ARGS", None)
	command = frappe_cli(
		frappe.local.site, "run-tests", "--module", "dartwing.tests.test_pytest_suites", *extra
	)
	return subprocess.run(
		command, cwd=helpers.SITES_PATH, env=env, capture_output=True, text=True, timeout=300
	)


def write_suite(folder, text: str):
	folder.mkdir()
	(folder / "test_sample.py").write_text(textwrap.dedent(text))
	return folder


def test_each_pytest_test_is_one_unittest_test_and_a_failure_fails_the_run(tmp_path):
	done = run_tests(write_suite(tmp_path / "mixed", SAMPLE))
	output = done.stdout + done.stderr
	assert done.returncode == 1, output[-3000:]
	assert "Ran 4 tests" in output
	assert "FAILED (failures=2, skipped=1)" in output
	assert "test_sample.py::test_fails" in output and "'actual' == 'expected'" in output
	assert "error in setup" in output and "fixture broke" in output


def test_a_passing_suite_passes(tmp_path):
	passing = SAMPLE.split("def test_fails")[0]
	done = run_tests(write_suite(tmp_path / "passing", passing))
	output = done.stdout + done.stderr
	assert done.returncode == 0, output[-3000:]
	assert "Ran 1 test" in output and "\nOK" in output


def test_a_suite_with_no_tests_fails(tmp_path):
	done = run_tests(write_suite(tmp_path / "empty", "X = 1\n"))
	output = done.stdout + done.stderr
	assert done.returncode == 1, output[-3000:]
	assert "exited with status 5" in output
