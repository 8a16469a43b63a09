"""`python -m helpdesk.server [--http-idle-timeout S] [daphne's options] helpdesk.asgi:application`: daphne, with a
limit on how long a kept-alive HTTP connection may sit idle.

daphne's own options bound the rest (--http-timeout, --websocket_timeout, --websocket_connect_timeout,
--ping-interval, --ping-timeout), but not Twisted's idle timeout between requests on one connection: every idle
connection holds a socket and its buffers, and a client can open many. Twisted resets the timer whenever bytes
arrive and stops it while a request is being answered (a streamed response, an upgraded websocket), so only
connections that say nothing are closed.
"""

import argparse
import sys

from daphne import server as daphne_server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory

from helpdesk.daphne_limits import BodyLimitedWebRequest

DEFAULT_HTTP_IDLE_TIMEOUT = 15.0
# daphne's own limits, set here for every place that starts it (compose, the image, `make run`, the tests); options
# given on the command line come after these and win.
DAPHNE_DEFAULTS = [
    # An HTTP request has this long to be answered in full (streamed completions included): 503 if it never starts.
    "--http-timeout=300",
    # A websocket handshake must complete within this many seconds (customers then have CHAT_HELLO_TIMEOUT to
    # send their hello).
    "--websocket_connect_timeout=10",
    # A websocket is closed after this long, however busy: the widget and the console reconnect and resume.
    "--websocket_timeout=43200",
    # A ping after 20 s of silence; a peer that does not answer within 30 s is dropped (a vanished client).
    "--ping-interval=20",
    "--ping-timeout=30",
]


def idle_timeout_factory(seconds: float) -> type[HTTPFactory]:
    class IdleTimeoutHTTPFactory(HTTPFactory):
        """daphne's HTTP factory whose connections close after `seconds` without a byte from the client."""

        def __init__(self, server):
            super().__init__(server)
            self.timeOut = seconds

        def buildProtocol(self, addr):
            protocol = super().buildProtocol(addr)
            # Bodies over their address's limit are dropped as they arrive and answered 413 (helpdesk.daphne_limits).
            protocol.requestFactory = BodyLimitedWebRequest
            return protocol

    return IdleTimeoutHTTPFactory


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--http-idle-timeout", type=float, default=DEFAULT_HTTP_IDLE_TIMEOUT)
    ours, daphne_args = parser.parse_known_args(argv)
    daphne_server.HTTPFactory = idle_timeout_factory(ours.http_idle_timeout)
    CommandLineInterface().run([*DAPHNE_DEFAULTS, *daphne_args])


if __name__ == "__main__":
    main(sys.argv[1:])
