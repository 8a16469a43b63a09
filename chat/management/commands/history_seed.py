"""manage.py history_seed [--count N] [--days D] [--if-empty]: see chat.history."""

import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.history import history_seed
from chat.management.commands.search_reindex import search_terms_fill
from chat.models import Conversation, Site, SiteHours

SITE_NAME = "Demo shop (sample history)"
AGENTS = ("demo-ann", "demo-bob", "demo-chen")


class Command(BaseCommand):
    help = (
        "Write a plausible past of finished conversations (bot answers, handoffs, agents' answers, ratings) for the "
        f"site {SITE_NAME!r}, so the reports have something to show. Its agents ({', '.join(AGENTS)}) cannot log in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=400, help="Conversations to write (default 400).")
        parser.add_argument("--days", type=int, default=30, help="Spread over the last DAYS days (default 30).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed: the same seed writes the same past.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any conversation exists.")

    def handle(self, *args, count, days, seed, if_empty, **options):
        if count < 1 or days < 1:
            raise CommandError("--count and --days must be at least 1.")
        if if_empty and Conversation.objects.exists():
            self.stdout.write("There are conversations already: no sample history written.")
            return
        site, created = Site.objects.get_or_create(
            name=SITE_NAME, defaults={"timezone": settings.TIME_ZONE, "is_active": False}
        )
        if created:
            for weekday in range(5):
                SiteHours.objects.create(site=site, weekday=weekday, opens=datetime.time(9), closes=datetime.time(18))
        agents = []
        for username in AGENTS:
            agent, made = get_user_model().objects.get_or_create(username=username)
            if made:
                agent.set_unusable_password()
                agent.save(update_fields=["password"])
            agents.append(agent)
        written = history_seed(count=count, days=days, site=site, agents=agents, seed=seed)
        # Written in bulk, the messages skipped Message.save: their search terms are filled here.
        search_terms_fill(only_missing=True)
        self.stdout.write(f"Wrote {written} past conversations of {site.name!r} over {days} days.")
