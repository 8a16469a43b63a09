"""manage.py search_reindex [--if-needed] [--batch N]: fill the messages' search terms (chat.search).

Messages saved since the search existed have their terms already (Message.save keeps them); this is for the rows
written before it, or in bulk (chat.history). --if-needed fills only messages with content and no terms, so it is
quick to run at every start; without it every message's terms are made again (after a change to the segmenter).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from chat.models import Message
from chat.search import message_search_terms

BATCH = 500


def search_terms_fill(*, only_missing: bool, batch: int = BATCH) -> int:
    """Write the search terms of every message (or of those without any), `batch` rows per statement, in order of
    id so memory stays flat however many there are. Returns how many messages were looked at."""
    rows = Message.objects.order_by("pk")
    if only_missing:
        rows = rows.filter(search_terms="").exclude(content="")
    done, last_pk = 0, 0
    while True:
        page = list(rows.filter(pk__gt=last_pk).only("pk", "content")[:batch])
        if not page:
            return done
        known: dict[str, str] = {}  # many messages say the same thing ("Thanks!"): segment each text once
        for message in page:
            if message.content not in known:
                known[message.content] = message_search_terms(message.content)
            message.search_terms = known[message.content]
        with transaction.atomic():
            Message.objects.bulk_update(page, ["search_terms"])
        done += len(page)
        last_pk = page[-1].pk


class Command(BaseCommand):
    help = "Fill the messages' search terms for the console's search (all, or with --if-needed those missing)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-needed", action="store_true", help="Only messages with content and no search terms yet."
        )
        parser.add_argument("--batch", type=int, default=BATCH, help=f"Messages per update (default {BATCH}).")

    def handle(self, *args, if_needed, batch, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        done = search_terms_fill(only_missing=if_needed, batch=batch)
        self.stdout.write(f"Search terms written for {done} message{'s' if done != 1 else ''}.")
