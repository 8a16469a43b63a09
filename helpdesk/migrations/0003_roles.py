"""The staff roles as groups: agents use the console; managers also edit tickets and see reports; admins all."""

from django.db import migrations

ROLES = {
    "agent": ["helpdesk.use_console", "helpdesk.view_ticket", "chat.view_conversation", "chat.view_message"],
    "manager": [
        "helpdesk.use_console",
        "helpdesk.view_ticket",
        "helpdesk.change_ticket",
        "chat.view_conversation",
        "chat.view_message",
        "chat.view_rating",
        "inference.view_systemprompt",
        "inference.add_systemprompt",
        "inference.view_fallbackrule",
        "inference.add_fallbackrule",
        "inference.change_fallbackrule",
    ],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.set(Permission.objects.all())


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0002_console_permission"),
        ("chat", "0003_message_author"),
        ("inference", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
