"""The staff roles as groups (made by migrations 0003, 0008 and 0009): agent, manager and admin.

The admin group holds every permission there is. Migrations run once, so a model added later would bring
permissions the group lacks; the post_migrate receiver below makes good each time `migrate` runs.
"""

ADMIN_GROUP = "admin"
PLAYGROUND_PERMISSION = "helpdesk.use_playground"
SUPERVISOR_PERMISSION = "helpdesk.supervise_conversations"
TICKET_EDIT_PERMISSION = "helpdesk.change_ticket"


def admin_group_sync(*, group_model, permission_model, using: str = "default") -> int:
    """Give the admin group every permission it lacks; returns how many it got.

    The group itself comes from the migrations: a database without it has just been flushed (test cases flush,
    then restore the migrations' rows with their ids), and a group made here would collide with the restored one.
    """
    group = group_model.objects.using(using).filter(name=ADMIN_GROUP).first()
    if group is None:
        return 0
    missing = list(permission_model.objects.using(using).exclude(group=group).values_list("pk", flat=True))
    if missing:
        group.permissions.add(*missing)
    return len(missing)


def admin_group_sync_after_migrate(sender, *, apps=None, using: str = "default", **kwargs) -> None:
    """post_migrate, for each app: by then django.contrib.auth has created the app's permissions. `flush` (as test
    cases run it) sends no migration state: the installed models are the state then."""
    if apps is None:
        from django.apps import apps
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:  # auth is not migrated (yet) in this database: nothing to sync
        return
    admin_group_sync(group_model=group_model, permission_model=permission_model, using=using)
