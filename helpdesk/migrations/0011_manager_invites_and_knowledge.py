"""Managers invite teammates (helpdesk.invitations) and work on the knowledge gaps page, whose drafts are articles;
users already in the manager or admin group become staff, as joining those groups now makes them (helpdesk.roles)."""

from django.conf import settings
from django.db import migrations

GRANTS = {
    "manager": [
        "knowledge.view_article",
        "knowledge.add_article",
        "knowledge.change_article",
        "helpdesk.add_invitation",
    ],
}
STAFF_ROLES = ("manager", "admin")


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
    User = apps.get_model(settings.AUTH_USER_MODEL)
    User.objects.filter(is_staff=False, groups__name__in=STAFF_ROLES).update(is_staff=True)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0010_customer_notes_invitations"),
        ("knowledge", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
