"""The staff side's Prometheus series: handoffs and ratings (counted from chat's domain signals once their
transaction commits, in whichever process made them), webhook deliveries (in the workers that send them), and the
state of the queue, the agents and the business hours, read from the database when Prometheus scrapes a web
process.

The state gauges are the same from every web process (they read one database): aggregate them with max(), not
sum(). They are registered by the web entry point (helpdesk.asgi), not by workers, so a scrape of a worker never
queries the database.
"""

import logging

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chat.models import Conversation, HandoffReason, Site
from helpdesk.models import AgentPresence

logger = logging.getLogger(__name__)

HANDOFFS = Counter("helpdesk_handoffs_total", "Conversations handed to the agents, by reason", ["reason"])
RATINGS = Counter("helpdesk_ratings_total", "Ratings customers gave, by score (1 to 5)", ["score"])
WEBHOOK_DELIVERIES = Counter(
    "helpdesk_webhook_deliveries_total",
    "Webhook deliveries by outcome: delivered (an attempt succeeded), failed (an attempt failed), "
    "given_up (the delivery was abandoned: attempts spent, or the webhook turned off)",
    ["outcome"],
)

for _reason in HandoffReason.values:
    HANDOFFS.labels(reason=_reason)
for _score in range(1, 6):
    RATINGS.labels(score=str(_score))
for _outcome in ("delivered", "failed", "given_up"):
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)


class HelpdeskStateCollector(Collector):
    """Gauges computed from the database at scrape time (four queries)."""

    def describe(self):
        return self._families()

    def collect(self):
        families = self._families()
        try:
            values = helpdesk_state()
        except Exception as exc:  # the database is down: the other series still go out
            logger.warning("could not read the helpdesk's state for /metrics: %r", exc)
            return []
        for family in families:
            family.add_metric([], values[family.name])
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("helpdesk_conversations_waiting", "Conversations waiting for an agent (queued)"),
            GaugeMetricFamily(
                "helpdesk_conversations_waiting_oldest_seconds",
                "How long the longest-waiting queued conversation has waited since its handoff (0: none waits)",
            ),
            GaugeMetricFamily("helpdesk_agents_online", "Agents online with the console open (whatever their load)"),
            GaugeMetricFamily(
                "helpdesk_sites_in_business_hours",
                "Active sites with business hours set that are open now (sites without hours are not counted)",
            ),
        ]


def helpdesk_state() -> dict[str, float]:
    """The values of HelpdeskStateCollector's gauges, by name."""
    now = timezone.now()
    waiting = Conversation.objects.filter(status=Conversation.Status.QUEUED).aggregate(
        count=Count("pk"), oldest=Min("handed_off_at")
    )
    oldest = max((now - waiting["oldest"]).total_seconds(), 0.0) if waiting["oldest"] else 0.0
    agents = AgentPresence.objects.filter(status=AgentPresence.Status.ONLINE, connections__gt=0).count()
    sites = Site.objects.filter(is_active=True, hours__isnull=False).distinct().prefetch_related("hours")
    return {
        "helpdesk_conversations_waiting": waiting["count"],
        "helpdesk_conversations_waiting_oldest_seconds": oldest,
        "helpdesk_agents_online": agents,
        "helpdesk_sites_in_business_hours": sum(1 for site in sites if site.is_open(now)),
    }


_state_collector: HelpdeskStateCollector | None = None


def web_collectors_register(registry=REGISTRY) -> None:
    """Export the database-derived gauges from this process (web processes only; idempotent)."""
    global _state_collector
    if _state_collector is None:
        _state_collector = HelpdeskStateCollector()
        registry.register(_state_collector)
