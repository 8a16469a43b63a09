"""Invitations to join the team: a one-time link that lets a new teammate choose a password and start in a role.

The link carries a random token (secrets.token_urlsafe); only its SHA-256 is stored, as for API keys, so the
database alone never gives a working link. An invitation is good once, until INVITATION_TTL seconds have passed or
it is revoked (in the admin). Accepting it makes the account with the role's group and the staff flag at once, so
the new teammate needs no other step before the console, the reports or the admin.

Who may invite: holders of helpdesk.add_invitation (managers and admins). An admin's invitation also needs
auth.change_user, which only admins hold: whoever may invite an admin could make one in the admin anyway.
"""

import datetime
import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from helpdesk.models import Invitation
from helpdesk.roles import ADMIN_GROUP

logger = logging.getLogger(__name__)

ROLES = ("agent", "manager", ADMIN_GROUP)
ADMIN_INVITE_PERMISSION = "auth.change_user"


class InvitationRefused(ValueError):
    """An invitation that may not be made or accepted; `code` says why, the message says it to a person."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NewTeammate:
    """What the invitee chose on the invitation's page."""

    username: str
    name: str
    password: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def roles_grantable(user) -> list[str]:
    """The roles this user may invite people to: none without helpdesk.add_invitation, admin only for admins."""
    if not user.has_perm("helpdesk.add_invitation"):
        return []
    return [role for role in ROLES if role != ADMIN_GROUP or user.has_perm(ADMIN_INVITE_PERMISSION)]


def invitation_state(invitation: Invitation, *, now: datetime.datetime | None = None) -> str:
    """Where the invitation stands: pending, accepted, revoked or expired."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= (now or timezone.now()):
        return "expired"
    return "pending"


@transaction.atomic
def invitation_create(*, email: str, role: str, invited_by) -> tuple[Invitation, str]:
    """A new invitation and its raw token, which is never stored and cannot be shown again. An earlier pending
    invitation of the same address is revoked, so only the newest link works."""
    email = get_user_model().objects.normalize_email(email.strip())
    if role not in roles_grantable(invited_by):
        raise InvitationRefused("role_refused", f"You may not invite people as {role}.")
    if get_user_model().objects.filter(email__iexact=email, is_active=True).exists():
        raise InvitationRefused("account_exists", f"{email} already has an account.")
    now = timezone.now()
    Invitation.objects.filter(email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=now).update(
        revoked_at=now
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        email=email,
        role=role,
        token_hash=token_hash(token),
        invited_by=invited_by,
        expires_at=now + datetime.timedelta(seconds=settings.INVITATION_TTL),
    )
    return invitation, token


def invitation_email_send(*, invitation: Invitation, link: str) -> bool:
    """Email the link to the invitee; False (logged) when the mail server could not take it, so the inviter is told
    to pass the link on themselves."""
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "Your team"
    days = max(1, round(settings.INVITATION_TTL / 86400))
    body = (
        f"{inviter} invited you to join the helpdesk team as {invitation.role}.\n\n"
        f"Open this link to choose your username and password:\n\n{link}\n\n"
        f"The link works once and expires in {days} day{'s' if days != 1 else ''}. "
        "If you did not expect this invitation, ignore this email.\n"
    )
    try:
        send_mail("You are invited to the helpdesk team", body, None, [invitation.email])
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("The invitation email to %s was not sent: %s", invitation.email, exc)
        return False
    return True


def invitation_for_token(token: str) -> Invitation | None:
    return Invitation.objects.filter(token_hash=token_hash(token)).select_related("invited_by").first()


def _name_split(name: str) -> tuple[str, str]:
    """First and last name from one field: "Ada Lovelace" → ("Ada", "Lovelace"); "李伟" stays whole."""
    first, _, last = name.strip().partition(" ")
    return first[:150], last.strip()[:150]


@transaction.atomic
def invitation_accept(*, token: str, teammate: NewTeammate):
    """Make the invitee's account (staff, in the role's group) and mark the invitation used; returns the user.
    Raises InvitationRefused for an unknown, used, revoked or expired link, or a username already taken."""
    invitation = Invitation.objects.select_for_update().filter(token_hash=token_hash(token)).first()
    if invitation is None:
        raise InvitationRefused("unknown", "This invitation link is not valid.")
    state = invitation_state(invitation)
    if state != "pending":
        raise InvitationRefused(state, f"This invitation was {state}.")
    first_name, last_name = _name_split(teammate.name)
    users = get_user_model().objects
    try:
        with transaction.atomic():  # a savepoint: a taken username leaves the invitation usable
            user = users.create_user(
                teammate.username,
                email=invitation.email,
                password=teammate.password,
                first_name=first_name,
                last_name=last_name,
                is_staff=True,
            )
    except IntegrityError as exc:
        raise InvitationRefused("username_taken", "This username is taken; choose another.") from exc
    group, _ = Group.objects.get_or_create(name=invitation.role)
    user.groups.add(group)
    invitation.accepted_at = timezone.now()
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    return user


@transaction.atomic
def invitations_revoke(*, invitation_ids) -> int:
    """Revoke the pending ones among these invitations; returns how many."""
    pending = Invitation.objects.filter(pk__in=list(invitation_ids), accepted_at=None, revoked_at=None)
    return pending.update(revoked_at=timezone.now())
