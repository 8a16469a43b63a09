"""The reports permission, given to the manager and admin roles (agents see their own figures without it)."""

from django.db import migrations

GROUPS = ("manager", "admin")


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="helpdesk", codename="view_reports")
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0007_webhooks"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="ticket",
            options={
                "ordering": ["-priority", "created_at"],
                "permissions": [
                    ("use_console", "Can use the agent console"),
                    ("view_reports", "Can see the reports of every agent and export them"),
                ],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
