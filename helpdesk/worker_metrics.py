"""A Celery worker's own /metrics endpoint: the generations run in the workers, so Prometheus scrapes each of them.

One HTTP port per worker process (WORKER_METRICS_PORT), not prometheus-client's multiprocess mode. Workers run the
threads pool: a single process holds the engine and all of its generations, so that process's default registry
already has every series, live. Multiprocess mode exists for prefork servers: it writes every increment to
memory-mapped files in a shared directory, needs a mode chosen per gauge, and does not carry custom collectors.
Several worker processes on one host each get their own port (one WORKER_METRICS_PORT per process); in
docker-compose each worker container has its own address, so they share the port and Prometheus finds them all by
DNS (deploy/prometheus/prometheus.yml).

Protected as the web's /metrics is (helpdesk.views.metrics): with METRICS_TOKEN set, only requests with
`Authorization: Bearer <token>` get an answer; without it, only loopback clients. It listens on
WORKER_METRICS_ADDR (127.0.0.1 unless set; docker-compose sets 0.0.0.0 with a token).
"""

import hmac
import ipaddress
import logging
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

logger = logging.getLogger(__name__)


def metrics_request_allowed(*, authorization: str, client: str, token: str) -> bool:
    """The bearer token when one is set, else a loopback client."""
    if token:
        sent = authorization.removeprefix("Bearer ").strip()
        return hmac.compare_digest(sent.encode(), token.encode())
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return (mapped or address).is_loopback


def metrics_wsgi_app(*, token: str, registry=REGISTRY):
    """prometheus-client's exposition (any path), behind metrics_request_allowed."""
    export = make_wsgi_app(registry)

    def app(environ, start_response):
        allowed = metrics_request_allowed(
            authorization=environ.get("HTTP_AUTHORIZATION", ""), client=environ.get("REMOTE_ADDR", ""), token=token
        )
        if not allowed:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"metrics need METRICS_TOKEN as a bearer token\n"]
        return export(environ, start_response)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # a scrape every few seconds is no news
        pass


def worker_metrics_serve(*, port: int, addr: str, token: str, registry=REGISTRY) -> ThreadingWSGIServer | None:
    """Serve this process's metrics on addr:port from a daemon thread; None (logged) if the port cannot be had."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    try:
        server = make_server(
            addr, port, metrics_wsgi_app(token=token, registry=registry), server_class, handler_class=_QuietHandler
        )
    except OSError:  # the port is taken (two workers on one host with one port): the worker still serves tasks
        logger.exception("worker metrics: could not listen on %s:%s", addr, port)
        return None
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("worker metrics on http://%s:%s/metrics", addr, server.server_port)
    return server
