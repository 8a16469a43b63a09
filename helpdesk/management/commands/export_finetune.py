"""manage.py export_finetune: finished conversations as chat-format JSONL for fine-tuning (see helpdesk.finetune)."""

import datetime
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from chat.models import Site
from helpdesk import finetune
from inference.prompt import PromptError
from inference.selectors import system_prompt_active


def _moment(value: str, *, end_of_day: bool) -> datetime.datetime:
    """A date (its start, or with `end_of_day` the next day's start) or a datetime, aware in TIME_ZONE if naive."""
    try:
        day = parse_date(value)  # first: parse_datetime also takes a bare date, as its midnight
        moment = None if day else parse_datetime(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a valid date: {exc}") from exc
    if day is not None:
        moment = datetime.datetime.combine(day + datetime.timedelta(days=int(end_of_day)), datetime.time.min)
    elif moment is None:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD) or a datetime (YYYY-MM-DDTHH:MM).")
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _site(value: str) -> Site:
    match = Q(key=value) | (Q(pk=int(value)) if value.isdigit() else Q())
    site = Site.objects.filter(match).first()
    if site is None:
        raise CommandError(f"No site has the id or key {value!r}.")
    return site


class Command(BaseCommand):
    help = (
        "Write resolved conversations as chat-format JSONL for fine-tuning: rated bot conversations and "
        "human-handled ones (the agents' answers are the targets), with emails, phone numbers, order numbers and "
        "the customer's name scrubbed. Counts of written and skipped conversations go to stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="File to write (default: stdout).")
        parser.add_argument("--since", help="Conversations started on or after this date (YYYY-MM-DD) or datetime.")
        parser.add_argument("--until", help="... and on or before this date (a datetime: before it).")
        parser.add_argument("--language", default="", help="Base language, e.g. en or zh (zh-CN counts as zh).")
        parser.add_argument("--site", help="A site's id or key.")
        parser.add_argument(
            "--min-rating",
            type=int,
            default=finetune.DEFAULT_MIN_RATING,
            choices=range(1, 6),
            metavar="1-5",
            help="Bot conversations need at least this rating; human ones rated lower are skipped (default 4).",
        )
        parser.add_argument("--kind", choices=finetune.KINDS, default="all", help="bot, human or all (default).")
        prompt = parser.add_mutually_exclusive_group()
        prompt.add_argument(
            "--system-prompt",
            help="The system turn, a template that may use {{company_name}}, {{language}}, {{current_time}}, "
            "{{user_region}} (default: the active system prompt).",
        )
        prompt.add_argument("--no-system-prompt", action="store_true", help="No system turn.")

    def handle(self, *args, **options):
        if options["no_system_prompt"]:
            template = None
        else:
            template = options["system_prompt"] if options["system_prompt"] is not None else system_prompt_active()
        export = finetune.ExportOptions(
            since=_moment(options["since"], end_of_day=False) if options["since"] else None,
            until=_moment(options["until"], end_of_day=True) if options["until"] else None,
            language=options["language"],
            site=_site(options["site"]) if options["site"] else None,
            min_rating=options["min_rating"],
            kind=options["kind"],
            system_prompt=template,
        )
        output = options["output"]
        try:
            if output == "-":
                stats = finetune.export_write(self.stdout, export)
                destination = "stdout"
            else:
                path = Path(output)
                partial = path.with_name(path.name + ".part")  # a failed export leaves no half file behind
                try:
                    with partial.open("w", encoding="utf-8", newline="\n") as stream:
                        stats = finetune.export_write(stream, export)
                    os.replace(partial, path)
                finally:
                    partial.unlink(missing_ok=True)
                destination = str(path)
        except PromptError as exc:
            raise CommandError(f"The system prompt cannot be rendered: {exc}") from exc
        self._report(stats, destination)

    def _report(self, stats: finetune.ExportStats, destination: str) -> None:
        def say(line: str) -> None:
            self.stderr.write(line, style_func=lambda text: text)

        kinds = ", ".join(f"{kind} {stats.written[kind]}" for kind in ("bot", "human"))
        say(f"Wrote {stats.written.total()} conversations ({kinds}) to {destination}.")
        say(f"Skipped {stats.skipped.total()} conversations" + (":" if stats.skipped else "."))
        for reason, count in stats.skipped.most_common():
            say(f"  {reason}: {count} ({finetune.SKIP_REASONS.get(reason, reason)})")
