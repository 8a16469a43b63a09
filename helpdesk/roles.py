"""The staff roles as groups: agent, manager and admin.

Migrations 0003, 0008 and 0009 made them on existing installs. After every `migrate` (and every `flush`, which
test cases run), `roles_sync` makes good what is missing: a role group that does not exist is created with the
permissions below, and the admin group is given every permission there is, so a model added later never leaves
admins short. Groups that exist keep whatever the operator gave or took from them, except that admins get
everything.
"""

ADMIN_GROUP = "admin"
PLAYGROUND_PERMISSION = "helpdesk.use_playground"
SUPERVISOR_PERMISSION = "helpdesk.supervise_conversations"
TICKET_EDIT_PERMISSION = "helpdesk.change_ticket"

# What a new install's roles may do (the sum of the migrations' grants).
DEFAULT_ROLES = {
    "agent": [
        "helpdesk.use_console",
        "helpdesk.view_ticket",
        TICKET_EDIT_PERMISSION,
        "chat.view_conversation",
        "chat.view_message",
    ],
    "manager": [
        "helpdesk.use_console",
        "helpdesk.view_ticket",
        TICKET_EDIT_PERMISSION,
        "helpdesk.view_reports",
        PLAYGROUND_PERMISSION,
        SUPERVISOR_PERMISSION,
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


def admin_group_sync(*, group_model, permission_model, using: str = "default") -> int:
    """Give the admin group (made if missing) every permission it lacks; returns how many it got."""
    group, _ = group_model.objects.using(using).get_or_create(name=ADMIN_GROUP)
    missing = list(permission_model.objects.using(using).exclude(group=group).values_list("pk", flat=True))
    if missing:
        group.permissions.add(*missing)
    return len(missing)


def roles_sync(*, group_model, permission_model, using: str = "default") -> None:
    """Create the missing role groups with their default permissions, then top up the admin group."""
    for name, codes in DEFAULT_ROLES.items():
        group, created = group_model.objects.using(using).get_or_create(name=name)
        if created:
            for code in codes:
                app_label, codename = code.split(".")
                permission = (
                    permission_model.objects.using(using)
                    .filter(content_type__app_label=app_label, codename=codename)
                    .first()
                )
                if permission is not None:
                    group.permissions.add(permission)
    admin_group_sync(group_model=group_model, permission_model=permission_model, using=using)


def roles_sync_after_migrate(sender, *, apps=None, using: str = "default", **kwargs) -> None:
    """post_migrate of the helpdesk app, the last installed: every app's permissions exist by then (auth's own
    receiver makes them first). `flush` sends no migration state: the installed models are the state then."""
    if apps is None:
        from django.apps import apps
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:  # auth is not migrated (yet) in this database: nothing to sync
        return
    roles_sync(group_model=group_model, permission_model=permission_model, using=using)
