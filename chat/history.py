"""A plausible past of conversations, written in bulk: the demo's report history and the reports bench's load.

Not a service: it writes finished conversations (messages, ratings, report figures) directly, thousands per
statement, which no customer or agent action does. The figures follow the same definitions as chat's services
(chat.services.reporting), so the reports read them as they read real ones.
"""

import datetime
import math
import random
import secrets
import uuid
import zoneinfo

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, HandoffReason, Message, Rating, Site, business_seconds, hours_open
from chat.selectors import secret_hash

QUESTIONS = {
    "en": [
        "How long does delivery take?",
        "Can I return a product I bought last month?",
        "How do I reset my password?",
        "Do you ship to Canada?",
        "My parcel has not arrived yet.",
        "Can I change the address of my order?",
        "How do I get an invoice?",
        "Is the warranty valid abroad?",
    ],
    "zh": [
        "退货要多久？",
        "怎么开发票？",
        "可以寄到香港吗？",
        "我的包裹还没到。",
        "怎么修改收货地址？",
        "保修期多长？",
    ],
}
BOT_ANSWERS = {
    "en": "Standard delivery takes 3-5 business days; you get a tracking link by email when the parcel leaves.",
    "zh": "标准配送需要3-5个工作日，包裹发出后您会收到物流链接。",
}
AGENT_ANSWERS = {"en": "I have checked your order: it leaves our warehouse today.", "zh": "已为您查询，订单今天发出。"}
THANKS = {"en": "Thanks, that helped!", "zh": "好的，谢谢，解决了"}
COMMENTS = [
    "",
    "",
    "",
    "Quick and clear.",
    "Took a while.",
    "Very helpful agent.",
    "服务很好",
    "The bot did not get it.",
]
# Why conversations went to a person, and how often.
REASONS = [
    (HandoffReason.CUSTOMER_REQUEST, 40),
    (HandoffReason.NO_KNOWLEDGE, 33),
    (HandoffReason.MODEL_DEFERRED, 10),
    (HandoffReason.ENGINE_FAILURE, 3),
    (HandoffReason.OFFLINE_MESSAGE, 9),
    (HandoffReason.BOT_OFF, 5),
]
# Relative traffic by local hour of day (a support team's day) and weekday (Monday first).
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 9, 10, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
WEEKDAY_WEIGHTS = [10, 10, 9, 9, 8, 5, 4]
BATCH = 2000


def _lognormal(rng: random.Random, median: float, spread: float = 0.8) -> float:
    return median * math.exp(rng.gauss(0, spread))


def _moment(rng: random.Random, days: int, now: datetime.datetime, tz) -> datetime.datetime:
    """A time in the last `days` days, shaped like a support team's traffic (in the site's time zone)."""
    while True:
        day = (now - datetime.timedelta(days=rng.randrange(days))).astimezone(tz).date()
        if rng.random() * 10 > WEEKDAY_WEIGHTS[day.weekday()]:
            continue
        hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
        moment = datetime.datetime.combine(day, datetime.time(hour, rng.randrange(60), rng.randrange(60)), tz)
        if moment < now - datetime.timedelta(minutes=30):
            return moment


def history_seed(*, count: int, days: int, site: Site, agents: list, seed: int = 7, now=None) -> int:
    """Write `count` past conversations of `site` over the last `days` days, handled by the bot and `agents`.

    Returns how many were written. Deterministic for a given `seed`.
    """
    rng = random.Random(seed)
    now = now or timezone.now()
    tz = zoneinfo.ZoneInfo(site.timezone)
    hours = list(site.hours.all())
    secret = secret_hash(secrets.token_urlsafe(16))  # nobody is meant to open these as a customer
    written = 0
    while written < count:
        size = min(BATCH, count - written)
        conversations, messages, ratings = [], [], []
        for _ in range(size):
            conversation, its_messages, rating = _one(rng, now, days, tz, site, hours, agents, secret)
            conversations.append(conversation)
            messages.extend(its_messages)
            if rating is not None:
                ratings.append(rating)
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations)
            Message.objects.bulk_create(messages)
            Rating.objects.bulk_create(ratings)
            # auto_now_add overrode the past creation times: put them back.
            for conversation in conversations:
                conversation.created_at = conversation._created
            Conversation.objects.bulk_update(conversations, ["created_at"], batch_size=BATCH)
            for message in messages:
                message.created_at = message._created
            Message.objects.bulk_update(messages, ["created_at"], batch_size=BATCH)
        written += size
    return written


def _one(rng, now, days, tz, site, hours, agents, secret):
    language = "zh" if rng.random() < 0.3 else "en"
    api = rng.random() < 0.12
    created = _moment(rng, days, now, tz).astimezone(datetime.UTC)
    conversation = Conversation(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        site=None if api else site,
        session_id=f"history-{rng.getrandbits(48):x}" if api else "",
        secret_hash=secret,
        language=language,
        customer_name=rng.choice(["", "Alex", "Sam", "李雷", "Maria", "王芳"]),
        first_customer_message_at=created,
    )
    conversation._created = created
    question = rng.choice(QUESTIONS[language])
    steps: list[tuple[str, datetime.datetime, str, object]] = [("customer", created, question, None)]
    reason = rng.choices([r for r, _ in REASONS], [w for _, w in REASONS])[0] if rng.random() < 0.42 else None
    bot_answers = reason not in (HandoffReason.CUSTOMER_REQUEST, HandoffReason.OFFLINE_MESSAGE, HandoffReason.BOT_OFF)
    clock = created
    if bot_answers:
        clock = created + datetime.timedelta(seconds=_lognormal(rng, 2.5, 0.5))
        conversation.bot_first_response_s = (clock - created).total_seconds()
        steps.append(("bot", clock, BOT_ANSWERS[language], None))
    rating = None
    if reason is None:
        roll = rng.random()
        if roll < 0.3:
            clock += datetime.timedelta(seconds=rng.randint(20, 120))
            steps.append(("customer", clock, THANKS[language], None))
            conversation.customer_confirmed = True
        elif roll < 0.4:  # back more than a day later: reopened
            clock += datetime.timedelta(hours=rng.randint(25, 60))
            if clock < now:
                steps.append(("customer", clock, rng.choice(QUESTIONS[language]), None))
                conversation.reopened_count = 1
        if rng.random() < 0.25:  # the customer ended the chat and rated it
            clock += datetime.timedelta(seconds=rng.randint(30, 300))
            conversation.status = Conversation.Status.RESOLVED
            conversation.resolved_at = clock
            rating = Rating(conversation=conversation, score=rng.choices([5, 4, 3, 2, 1], [55, 25, 8, 6, 6])[0])
    else:
        conversation.handoff_reason = reason
        conversation.first_handoff_at = conversation.handed_off_at = clock
        off_hours = not hours_open(hours, str(tz), clock)
        wait = _lognormal(rng, 9 * 3600 if off_hours else 90, 0.9)
        # The past is finished: every handoff was claimed, answered and resolved before now, so no sample
        # conversation waits in the agents' live queue or sits with an agent.
        minute = datetime.timedelta(minutes=1)
        claim = max(min(clock + datetime.timedelta(seconds=wait), now - 3 * minute), clock)
        answered = max(min(claim + datetime.timedelta(seconds=_lognormal(rng, 60, 0.7)), now - 2 * minute), claim)
        done = max(min(answered + datetime.timedelta(seconds=_lognormal(rng, 900, 0.9)), now - minute), answered)
        agent = rng.choice(agents)
        conversation.assignee = agent
        conversation.claimed_at = claim
        conversation.queue_wait_s = (claim - clock).total_seconds()
        conversation.human_first_response_s = (answered - clock).total_seconds()
        steps.append(("agent", answered, AGENT_ANSWERS[language], agent))
        conversation.status = Conversation.Status.RESOLVED
        conversation.resolved_at = conversation.released_at = done
        if rng.random() < 0.45:
            score = rng.choices([5, 4, 3, 2, 1], [50, 27, 10, 7, 6])[0]
            rating = Rating(conversation=conversation, score=score, comment=rng.choice(COMMENTS))
    if conversation.resolved_at:
        conversation.resolution_s = (conversation.resolved_at - created).total_seconds()
        conversation.resolution_business_s = (
            business_seconds(hours, str(tz), created, conversation.resolved_at)
            if conversation.site is not None
            else conversation.resolution_s
        )
    messages = []
    for seq, (role, moment, text, author) in enumerate(sorted(steps, key=lambda step: step[1]), start=1):
        message = Message(conversation=conversation, seq=seq, role=role, content=text, author=author)
        if role == "bot":
            message.engine, message.grounding, message.completed_at = "history", "extractive", moment
        message._created = moment
        messages.append(message)
    conversation.last_seq = len(messages)
    conversation.last_message_at = max(step[1] for step in steps)
    return conversation, messages, rating
