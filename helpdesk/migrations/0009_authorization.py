"""Authorization hardening: the playground and supervisor permissions, the ticket edit right for agents (the
console's ticket frame needs it), and every permission for the admin group (see helpdesk.roles)."""

from django.db import migrations

GRANTS = {
    "agent": ["helpdesk.change_ticket"],
    "manager": ["helpdesk.use_playground", "helpdesk.supervise_conversations"],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    from helpdesk.roles import admin_group_sync

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    admin_group_sync(group_model=Group, permission_model=Permission, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0008_reports_permission"),
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
                    ("use_playground", "Can try the bot in the playground"),
                    ("supervise_conversations", "Can open and act on any conversation, not only queued or their own"),
                ],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
