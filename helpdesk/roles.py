"""The staff roles as groups: agent, manager and admin.

Migrations 0003, 0008, 0009 and 0011 made them on existing installs. After every `migrate` (and every `flush`, which
test cases run), `roles_sync` makes good what is missing: a role group that does not exist is created with the
permissions below, and the admin group is given every permission there is, so a model added later never leaves
admins short. Groups that exist keep whatever the operator gave or took from them, except that admins get
everything.

Joining the manager or admin group sets the user's staff flag (`staff_flag_for_roles`, run by the receivers at the
end), so a user made a manager in the admin can sign in to the admin with no other step.
"""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

ADMIN_GROUP = "admin"
PLAYGROUND_PERMISSION = "helpdesk.use_playground"
SUPERVISOR_PERMISSION = "helpdesk.supervise_conversations"
TICKET_EDIT_PERMISSION = "helpdesk.change_ticket"
INVITE_PERMISSION = "helpdesk.add_invitation"

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
        # The knowledge gaps page and its drafts (an unpublished article from an agent's answer, reviewed in the
        # admin), and inviting teammates (helpdesk.invitations; an admin's invitation needs auth.change_user).
        "knowledge.view_article",
        "knowledge.add_article",
        "knowledge.change_article",
        INVITE_PERMISSION,
    ],
}
# Roles that work in Django's admin: joining one makes the user staff (the flag the admin's sign-in checks), so
# putting someone in the manager group by hand is enough. Agents work in the console and need no admin.
STAFF_ROLES = ("manager", ADMIN_GROUP)


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


def staff_flag_for_roles(*, user_ids) -> int:
    """Mark as staff those of these users who are in a staff role group and not staff yet; returns how many."""
    users = get_user_model().objects.filter(pk__in=list(user_ids), is_staff=False, groups__name__in=STAFF_ROLES)
    return users.update(is_staff=True)  # one UPDATE ... WHERE id IN (SELECT ...)


@receiver(m2m_changed, dispatch_uid="helpdesk.roles.staff_on_role_join")
def staff_on_role_join(sender, *, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """Users added to a staff role group (user.groups.add or group.user_set.add, the admin's form) become staff."""
    if action != "post_add" or not pk_set or sender is not get_user_model().groups.through:
        return
    if staff_flag_for_roles(user_ids=pk_set if reverse else [instance.pk]) and not reverse:
        instance.is_staff = True  # the caller's object too, so that saving it again keeps the flag


@receiver(post_save, dispatch_uid="helpdesk.roles.staff_on_user_save")
def staff_on_user_save(sender, *, instance, created: bool, raw: bool, update_fields=None, **kwargs) -> None:
    """A user of a staff role saved without the staff flag (unticked in the admin) keeps it. Saves of other fields
    only (the last sign-in time) are skipped, as are new users, who are in no group yet."""
    if sender is not get_user_model() or raw or created or instance.is_staff:
        return
    if update_fields is not None and "is_staff" not in update_fields:
        return
    if staff_flag_for_roles(user_ids=[instance.pk]):
        instance.is_staff = True
