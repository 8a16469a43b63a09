"""`manage.py email_receive --host 0.0.0.0 --port 25`: receive customers' reply emails over SMTP (self-hosted)."""

import signal
import threading

from django.core.management.base import BaseCommand

from chat.email.smtp_receiver import smtp_receiver


class Command(BaseCommand):
    help = "Receive replies to the helpdesk's emails over SMTP (only for reply+...@EMAIL_INBOUND_DOMAIN addresses)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=2525, help="Port to listen on (default 2525; MX uses 25).")

    def handle(self, *args, host: str, port: int, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        receiver = smtp_receiver(host, port)
        receiver.start()
        self.stdout.write(f"email_receive listening on {host}:{port}", ending="\n")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            receiver.stop()
