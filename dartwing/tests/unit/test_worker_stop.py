import os
import signal

from dartwing.dartwing_core.background_jobs import worker_stop


def test_nothing_is_seen_before_a_stop():
	watch = worker_stop.StopWatch(parent_pid=os.getppid())
	assert watch.requested() is None and watch.signalled() is None


def test_sigterm_to_this_process_is_an_immediate_stop_that_stays_seen():
	previous = signal.getsignal(signal.SIGTERM)
	watch = worker_stop.StopWatch(parent_pid=os.getppid())
	try:
		watch.install()
		os.kill(os.getpid(), signal.SIGTERM)
		stop = watch.signalled()
		assert stop is not None and stop.immediate and stop.reason == worker_stop.SIGNALLED
		assert watch.requested() is stop
		os.kill(os.getpid(), signal.SIGTERM)
		assert watch.signalled() is stop, "the first stop is the one kept"
	finally:
		signal.signal(signal.SIGTERM, previous)


def test_a_work_horse_whose_worker_is_gone_stops_at_once():
	gone = worker_stop.StopWatch(parent_pid=os.getppid() + 1)
	stop = gone.requested()
	assert stop is not None and stop.immediate and stop.reason == worker_stop.ORPHANED
	assert gone.signalled() is None, "no signal reached this process"
