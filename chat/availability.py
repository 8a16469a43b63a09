"""Who can answer a site's customers right now: the bot, and agents within business hours.

Agents belong to the staff side (helpdesk), which chat must not import. helpdesk registers its check here when
it starts (HelpdeskConfig.ready), the same inversion as chat's domain signals.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone

from chat.models import Site
from chat.outages import redis_optional

_agents_available: Callable[[], bool] = lambda: False  # noqa: E731  (replaced by helpdesk at startup)

BOT_FAILING_KEY = "chat:bot_failing"
# After an engine failure the bot counts as failing this long, unless a reply succeeds first.
BOT_FAILING_FOR_S = 120


def agents_available_register(check: Callable[[], bool]) -> None:
    global _agents_available
    _agents_available = check


def bot_failed() -> None:
    # A note for widgets, after the reply itself is decided: Redis being down must not fail the reply.
    with redis_optional("noting that the bot is failing"):
        cache.set(BOT_FAILING_KEY, True, BOT_FAILING_FOR_S)


def bot_recovered() -> None:
    with redis_optional("noting that the bot answers again"):
        cache.delete(BOT_FAILING_KEY)


@dataclass(frozen=True)
class Availability:
    open_now: bool
    agents_online: bool
    bot_enabled: bool
    bot_failing: bool

    @property
    def agents_can_answer(self) -> bool:
        return self.open_now and self.agents_online

    @property
    def mode(self) -> str:
        """ "chat" when someone can answer; "offline" (the widget offers leave-a-message) when nobody can."""
        bot_can_answer = self.bot_enabled and not self.bot_failing
        return "chat" if bot_can_answer or self.agents_can_answer else "offline"


def availability(site: Site | None) -> Availability:
    return Availability(
        open_now=site.is_open(timezone.now()) if site else True,
        agents_online=_agents_available(),
        bot_enabled=site.bot_enabled if site else True,
        bot_failing=bool(cache.get(BOT_FAILING_KEY)),
    )
