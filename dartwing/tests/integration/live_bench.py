"""A real web server and Socket.IO server for tier 2 tests that talk HTTP and WebSocket.

``LiveSite`` starts ``bench --site SITE serve`` (Frappe's own WSGI app, werkzeug) on a free port for
the test site, and the bench's Node Socket.IO server unless one already listens on the bench's
``socketio_port``. Clients log in for real (``login``) and keep their ``sid`` cookie.

The Socket.IO server authenticates a client by calling back the ``Origin`` it presents, so
clients present this web server's address as their origin and name the site in
``X-Frappe-Site-Name``.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import requests

from dartwing.processes import frappe_cli
from dartwing.tests.integration.helpers import SITES_PATH

PASSWORD = "Dartwing-Test-Pass-1"


def _free_port() -> int:
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		return probe.getsockname()[1]


def _listening(port: int) -> bool:
	with socket.socket() as probe:
		probe.settimeout(0.5)
		return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if predicate():
			return
		if process is not None and process.poll() is not None:
			raise RuntimeError(f"{what} exited with status {process.returncode}")
		time.sleep(0.2)
	raise TimeoutError(f"{what} did not come up within {timeout} s")


class LiveSite:
	def __init__(self, site: str):
		self.site = site
		self.bench_path = os.path.dirname(SITES_PATH)
		with open(os.path.join(SITES_PATH, "common_site_config.json")) as config:
			self.socketio_port = int(json.load(config).get("socketio_port") or 9000)
		self.web_port = _free_port()
		self.url = f"http://127.0.0.1:{self.web_port}"
		self._processes: list[subprocess.Popen] = []
		self._logs = []

	def _start(self, name: str, command: list[str], cwd: str) -> subprocess.Popen:
		log = open(os.path.join("/tmp", f"dartwing-test-{name}-{os.getpid()}.log"), "w")
		self._logs.append(log)
		process = subprocess.Popen(
			command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
		)
		self._processes.append(process)
		return process

	def start(self) -> "LiveSite":
		web = self._start(
			"web",
			frappe_cli(self.site, "serve", "--port", str(self.web_port), "--noreload"),
			SITES_PATH,
		)
		_wait(self._web_answers, 60, "the web server", web)
		if not _listening(self.socketio_port):
			node = shutil.which("node") or "node"
			socketio = self._start("socketio", [node, "apps/frappe/socketio.js"], self.bench_path)
			_wait(lambda: _listening(self.socketio_port), 30, "the Socket.IO server", socketio)
		return self

	def _web_answers(self) -> bool:
		try:
			return requests.get(f"{self.url}/api/method/ping", timeout=2).status_code == 200
		except requests.RequestException:
			return False

	def stop(self) -> None:
		for process in self._processes:
			if process.poll() is None:
				os.killpg(process.pid, 15)
		for process in self._processes:
			try:
				process.wait(timeout=10)
			except subprocess.TimeoutExpired:
				os.killpg(process.pid, 9)
		for log in self._logs:
			log.close()

	def session(self, user: str | None = None, password: str = PASSWORD) -> requests.Session:
		"""A client session, logged in as ``user`` (None: a guest)."""
		client = requests.Session()
		client.base_url = self.url
		if user:
			answer = client.post(
				f"{self.url}/api/method/login", data={"usr": user, "pwd": password}, timeout=30
			)
			answer.raise_for_status()
		return client

	def call(self, client: requests.Session, verb: str, method: str, **params) -> requests.Response:
		"""Call a whitelisted method of the jobs API over HTTP."""
		url = f"{self.url}/api/method/dartwing.dartwing_core.api.jobs.{method}"
		if verb == "GET":
			return client.get(url, params=params, timeout=60)
		return client.request(verb, url, json=params, timeout=60)
