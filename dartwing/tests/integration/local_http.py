"""A real HTTP server on 127.0.0.1 for tests: answers are scripted per path."""

import http.server
import threading
import time


class ScriptedServer:
	"""``routes[path] = (status, headers, body, delay_seconds)`` or a function of the request
	handler returning that tuple; every request is recorded."""

	def __init__(self):
		self.routes: dict[str, tuple[int, dict, str, float]] = {}
		self.requests: list[tuple[str, str | None]] = []
		server = self

		class Handler(http.server.BaseHTTPRequestHandler):
			def do_GET(self):
				server.requests.append((self.path, self.headers.get("Authorization")))
				route = server.routes.get(self.path, (404, {}, "not found", 0))
				status, headers, body, delay = route(self) if callable(route) else route
				if delay:
					time.sleep(delay)
				payload = body.encode()
				self.send_response(status)
				for key, value in headers.items():
					self.send_header(key, value)
				self.send_header("Content-Length", str(len(payload)))
				self.end_headers()
				self.wfile.write(payload)

			def log_message(self, *args):
				pass

		self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.httpd.daemon_threads = True
		self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

	@property
	def base_url(self) -> str:
		return f"http://127.0.0.1:{self.httpd.server_address[1]}"

	def url(self, path: str) -> str:
		return self.base_url + path

	def __enter__(self):
		self.thread.start()
		return self

	def __exit__(self, *exc):
		self.httpd.shutdown()
		self.httpd.server_close()
