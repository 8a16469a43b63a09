"""The conversations' report figures (first response times, queue wait, resolution times, reopenings), filled in
for the conversations that exist from their messages, as chat's services keep them from now on."""

import datetime

from django.db import migrations, models

REOPEN_AFTER = datetime.timedelta(hours=24)
SPOKEN = ("customer", "bot", "agent")


def backfill(apps, schema_editor):
    from chat.models import business_seconds

    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    SiteHours = apps.get_model("chat", "SiteHours")
    hours: dict[int, list] = {}
    for period in SiteHours.objects.all():
        hours.setdefault(period.site_id, []).append(period)
    for conversation in Conversation.objects.select_related("site").iterator(chunk_size=500):
        messages = Message.objects.filter(conversation_id=conversation.pk, role__in=SPOKEN).order_by("seq")
        first_customer = last = bot_first = human_first = None
        reopened = 0
        for message in messages.only("role", "state", "created_at", "completed_at"):
            at = message.completed_at or message.created_at
            if message.role == "customer":
                if first_customer is None:
                    first_customer = at
                elif last is not None and at - last >= REOPEN_AFTER:
                    reopened += 1
            elif message.role == "bot" and message.state == "complete" and bot_first is None and first_customer:
                bot_first = (at - first_customer).total_seconds()
            elif message.role == "agent" and human_first is None and conversation.handed_off_at:
                human_first = max((at - conversation.handed_off_at).total_seconds(), 0.0)
            last = at
        conversation.first_customer_message_at = first_customer
        conversation.last_message_at = last
        conversation.bot_first_response_s = bot_first
        conversation.first_handoff_at = conversation.handed_off_at
        conversation.human_first_response_s = human_first
        conversation.reopened_count = reopened
        if conversation.resolved_at:
            start, end = conversation.created_at, conversation.resolved_at
            conversation.resolution_s = max((end - start).total_seconds(), 0.0)
            site = conversation.site
            conversation.resolution_business_s = (
                business_seconds(hours.get(site.pk, []), site.timezone, start, end)
                if site is not None
                else conversation.resolution_s
            )
        conversation.save(
            update_fields=[
                "first_customer_message_at",
                "last_message_at",
                "bot_first_response_s",
                "first_handoff_at",
                "human_first_response_s",
                "reopened_count",
                "resolution_s",
                "resolution_business_s",
            ]
        )


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_message_grounding")]

    operations = [
        migrations.AddField("conversation", "first_customer_message_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("conversation", "last_message_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("conversation", "bot_first_response_s", models.FloatField(blank=True, null=True)),
        migrations.AddField("conversation", "first_handoff_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("conversation", "claimed_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("conversation", "released_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("conversation", "queue_wait_s", models.FloatField(blank=True, null=True)),
        migrations.AddField("conversation", "human_first_response_s", models.FloatField(blank=True, null=True)),
        migrations.AddField("conversation", "resolution_s", models.FloatField(blank=True, null=True)),
        migrations.AddField("conversation", "resolution_business_s", models.FloatField(blank=True, null=True)),
        migrations.AddField("conversation", "reopened_count", models.PositiveIntegerField(default=0)),
        migrations.AddField("conversation", "customer_confirmed", models.BooleanField(default=False)),
        migrations.AddIndex(
            "conversation", models.Index(fields=["site", "created_at"], name="conversation_site_created")
        ),
        migrations.AddIndex(
            "conversation", models.Index(fields=["assignee", "created_at"], name="conversation_assignee_created")
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
