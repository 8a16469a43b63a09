"""A real HTTP server that receives webhooks, for the tests: it records every request and answers as scripted."""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class WebhookReceiver:
    """Listens on 127.0.0.1 (a free port) in a thread. Answers POST /hook with `statuses` in turn, then `then`.

    A 3xx answer points to /elsewhere. While `gate` is cleared, requests wait before answering (up to 30 s).
    """

    def __init__(self, statuses: list[int] = (), then: int = 200, body: bytes = b"ok"):
        self.statuses = list(statuses)
        self.then = then
        self.body = body
        self.received: list[Received] = []
        self.gate = threading.Event()
        self.gate.set()
        self._changed = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._changed:
                    receiver.received.append(
                        Received(self.command, self.path, dict(self.headers), body, time.monotonic())
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                    receiver._changed.notify_all()
                receiver.gate.wait(30)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        return Handler

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """The requests received once there are at least `count` (TimeoutError otherwise)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"{len(self.received)} webhook requests arrived, expected {count}")
            return list(self.received)

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
