"""The agent's workday: snoozed conversations, the rating asked once, and the messages' search terms with their
full-text index on PostgreSQL (the same 'simple' configuration as the knowledge base: terms come segmented)."""

from django.db import migrations, models


def _postgresql_only(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0007_conversation_report_figures")]

    operations = [
        migrations.AlterField(
            "conversation",
            "status",
            models.CharField(
                choices=[
                    ("bot", "Bot"),
                    ("queued", "Waiting for an agent"),
                    ("agent", "With an agent"),
                    ("snoozed", "Snoozed"),
                    ("resolved", "Resolved"),
                ],
                db_index=True,
                default="bot",
                max_length=16,
            ),
        ),
        migrations.AddField(
            "conversation", "snoozed_until", models.DateTimeField(blank=True, db_index=True, null=True)
        ),
        migrations.AddField("conversation", "rating_requested_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("message", "search_terms", models.TextField(blank=True, default="")),
        migrations.AddIndex(
            "conversation", models.Index(fields=["customer_email"], name="conversation_customer_email")
        ),
        migrations.AddIndex(
            "conversation", models.Index(fields=["status", "last_message_at"], name="conversation_status_last")
        ),
        migrations.RunPython(
            _postgresql_only(
                "CREATE INDEX chat_message_fts ON chat_message USING gin (to_tsvector('simple', search_terms))"
            ),
            _postgresql_only("DROP INDEX IF EXISTS chat_message_fts"),
        ),
    ]
