"""The managers' reports page at scale: N past conversations, then the page, a drill-down and the export, timed.

Seeds its own database (PostgreSQL `helpdesk_bench_reports_<pid>` on 127.0.0.1, created afresh and dropped at the
end; or a temporary SQLite file with --sqlite, the embedded default) with N conversations over the last D days
through chat.history (the sample history of `manage.py history_seed`: bot answers, handoffs with their reasons,
agents' answers, ratings, reopenings; two to four messages each), runs ANALYZE as autovacuum would, logs a manager
in, then requests through Django's test client, each R times after one cold request:

- /reports/ over the last 30 days and over the whole range (target: under 1 s each on this machine);
- a drill-down page (/reports/conversations/?metric=handed_off, its first page);
- the CSV export of the last 30 days (/reports/export.csv), read to the end.

    .venv/bin/python bench/reports.py                                   # 100,000 conversations over 90 days
    .venv/bin/python bench/reports.py --conversations 20000 --sqlite
    .venv/bin/python bench/reports.py --conversations 200 --rounds 1 --json /tmp/reports.json   # smoke test
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line, django_setup, percentile, scratch_database  # noqa: E402

TARGET_MS = 1000.0


def timed(client, url: str, rounds: int) -> dict:
    """One cold request, then `rounds` warm ones: their p50 and max in milliseconds, and the response's size."""
    figures, size = [], 0
    for _ in range(rounds + 1):
        started = time.perf_counter()
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {body[:300]!r}")
        size = len(body)
        figures.append(elapsed)
    warm = figures[1:] or figures
    return {
        "url": url,
        "cold_ms": round(figures[0], 1),
        "p50_ms": round(percentile(warm, 50), 1),
        "max_ms": round(max(warm), 1),
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=5, help="Warm requests per page after the cold one.")
    parser.add_argument("--sqlite", action="store_true", help="The embedded default's SQLite instead of PostgreSQL.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    print(f"$ {command_line()}", flush=True)
    with scratch_database("helpdesk_bench_reports", sqlite=args.sqlite) as url:
        django_setup(url)
        result = run(args)
    print(f"\nTarget: the page under {TARGET_MS:.0f} ms: {'met' if result['target_met'] else 'NOT met'}.")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def run(args) -> dict:
    import datetime

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from chat.models import Conversation, Message

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    call_command("history_seed", count=args.conversations, days=args.days, stdout=open("/dev/null", "w"))
    seed_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    conversations, messages = Conversation.objects.count(), Message.objects.count()
    print(
        f"{conversations:,} conversations, {messages:,} messages over {args.days} days on {connection.vendor}: "
        f"seeded in {seed_s:.1f} s",
        flush=True,
    )
    manager = get_user_model().objects.create_user("bench-manager")
    manager.groups.add(Group.objects.get(name="manager"))
    client = Client()
    client.force_login(manager)
    today = timezone.localdate()
    last_30 = f"since={today - datetime.timedelta(days=29)}&until={today}"
    everything = f"since={today - datetime.timedelta(days=args.days)}&until={today}"
    pages = {
        "report_30_days": f"/reports/?{last_30}",
        f"report_{args.days}_days": f"/reports/?{everything}",
        "drill_down_handed_off": f"/reports/conversations/?{last_30}&metric=handed_off",
        "export_csv_30_days": f"/reports/export.csv?{last_30}",
    }
    timings = {}
    with override_settings(ALLOWED_HOSTS=["testserver"], DEBUG=False):
        for name, url in pages.items():
            timings[name] = timed(client, url, args.rounds)
            t = timings[name]
            print(
                f"  {name:<24} cold {t['cold_ms']:>8.1f} ms   p50 {t['p50_ms']:>8.1f} ms   max {t['max_ms']:>8.1f} ms"
                f"   {t['bytes'] / 1024:>8.1f} KiB",
                flush=True,
            )
    report_pages = [t for name, t in timings.items() if name.startswith("report_")]
    return {
        "command": command_line(),
        "database": connection.vendor,
        "conversations": conversations,
        "messages": messages,
        "days": args.days,
        "seed_s": round(seed_s, 1),
        "rounds": args.rounds,
        "timings": timings,
        "target_ms": TARGET_MS,
        "target_met": all(t["max_ms"] < TARGET_MS for t in report_pages),
    }


if __name__ == "__main__":
    main()
