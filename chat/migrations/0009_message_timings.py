"""Where a bot reply's time went before its first text: the stages' end times, stored on the reply."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0008_lifecycle_search")]

    operations = [migrations.AddField("message", "timings", models.JSONField(blank=True, default=dict))]
