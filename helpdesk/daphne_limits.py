"""Request body limits inside daphne, before the application is even called.

Twisted, under daphne, receives a request's whole body before daphne hands the request to the application: small
bodies in memory, large ones spooled to a temporary file, with no limit. The ASGI limit (helpdesk.limits) refuses
them before Django reads them, but only once all of it is on the server's disk. This request class applies the same
limits (helpdesk.limits.body_limit, per address) while the body arrives: from Content-Length before a byte of it,
or counted chunk by chunk; past the limit nothing more is kept, and once the client has finished sending, the answer
is the 413 of the JSON error format (answering earlier would make most clients fail to read it, mid-upload).
"""

import io
import time
from urllib.parse import urlsplit

from daphne.http_protocol import WebRequest

from helpdesk.limits import body_limit, refusal_body


class BodyLimitedWebRequest(WebRequest):
    """daphne's request, keeping no body past the limit of its address and answering it with 413."""

    body_limit: int | None = None
    body_received = 0
    body_refused = False

    def gotLength(self, length):
        target = getattr(self.channel, "_path", b"") or b""
        self.body_limit = body_limit(urlsplit(target.decode("latin-1")).path)
        if length is not None and length > self.body_limit:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.body_refused:
            return  # read and dropped
        self.body_received += len(data)
        if self.body_limit is not None and self.body_received > self.body_limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self.body_refused = True
        if self.content is not None:
            self.content.close()
        self.content = io.BytesIO()

    def process(self):
        if not self.body_refused:
            return super().process()
        self.request_start = time.time()
        body = refusal_body(self.body_limit)
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
        self.handle_reply({"type": "http.response.start", "status": 413, "headers": headers})
        self.handle_reply({"type": "http.response.body", "body": body})
        return None
