"""A tiny HTTP server on 127.0.0.1 that the examples call instead of the internet.

It is scaffolding, not part of resilio: an example starts it with
``with loopback(answer) as base_url:`` and then makes real HTTP requests to it, so the
examples run in CI with no outside network. ``answer(request)`` decides every reply: a
status and a JSON body, or ``None`` to close the connection without answering (a
dropped connection, as seen by the client). The server picks a free port and stops when
the block ends. This module is imported by the examples; it does nothing on its own.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.frozen
class Request:
    """One request as the server saw it: ``count`` numbers the requests to this path."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: object
    count: int


Reply = tuple[int, object] | None
"""A status and a JSON-able body, or ``None`` to drop the connection unanswered."""


@contextmanager
def loopback(answer: Callable[[Request], Reply]) -> Iterator[str]:
    """Serve ``answer`` on 127.0.0.1 at a free port; yield the base URL."""
    for name in ("NO_PROXY", "no_proxy"):  # a proxy in the environment cannot reach us
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.reply()

        def do_POST(self) -> None:
            self.reply()

        def reply(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with lock:
                counts[url.path] += 1
                count = counts[url.path]
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            body = json.loads(raw) if raw else None
            headers = dict(self.headers.items())
            reply = answer(Request(self.command, url.path, query, headers, body, count))
            if reply is None:
                return  # no status line at all: the client sees a dropped connection
            status, payload = reply
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the examples' output to what they print themselves

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
