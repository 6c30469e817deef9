"""``dartwing.progress`` / ``dartwing.raise_if_canceled`` reach the running job, and only it."""

import threading

import pytest

from dartwing.dartwing_core.background_jobs import running_job
from dartwing.dartwing_core.background_jobs.handler_errors import JobCanceled


class FakeContext:
	def __init__(self, canceled=False):
		self.reports = []
		self.canceled = canceled

	def progress(self, percent, message=None):
		self.reports.append((percent, message))
		self.raise_if_canceled()

	def raise_if_canceled(self):
		if self.canceled:
			raise JobCanceled("canceled")


def test_outside_a_job_both_are_no_ops():
	assert running_job.current() is None
	running_job.progress(50, "half")
	running_job.raise_if_canceled()


def test_inside_a_job_they_act_on_it_and_stop_acting_after():
	context = FakeContext()
	with running_job.running(context):
		running_job.progress(40, "step 2 of 5")
		assert running_job.current() is context
	running_job.progress(90, "after the job")
	assert context.reports == [(40, "step 2 of 5")]
	assert running_job.current() is None


def test_a_canceled_job_raises_and_the_context_is_still_reset():
	context = FakeContext(canceled=True)
	with pytest.raises(JobCanceled):
		with running_job.running(context):
			running_job.raise_if_canceled()
	assert running_job.current() is None


def test_another_thread_does_not_see_the_job():
	seen = []
	with running_job.running(FakeContext()):
		thread = threading.Thread(target=lambda: seen.append(running_job.current()))
		thread.start()
		thread.join()
	assert seen == [None]


def test_the_package_exports_work_without_frappe():
	import dartwing

	context = FakeContext()
	with running_job.running(context):
		dartwing.progress(10, "via dartwing")
	assert context.reports == [(10, "via dartwing")]
