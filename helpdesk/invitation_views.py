"""The invitation pages: staff invite a teammate (the link is emailed and shown once to copy), and the invitee opens
the link, chooses a username and password, and starts signed in where their role works. See helpdesk.invitations."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from helpdesk import invitations
from helpdesk.models import Invitation

LINK_TAG = "invitation-link"  # the flash message that holds the new link, shown with a "copy" button
PENDING_SHOWN = 50
# Where each role starts after accepting: the console, the reports, the admin (URL names).
LANDING = {"agent": "console", "manager": "reports", invitations.ADMIN_GROUP: "admin:index"}
# Status of the page a link that cannot be used answers with.
UNUSABLE_STATUS = {"unknown": 404, "accepted": 410, "revoked": 410, "expired": 410}


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email")
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(role, role.capitalize()) for role in roles]


class AcceptForm(UserCreationForm):
    """Username, name and the password twice, checked by the configured password validators (which see the
    invitation's email, so a password like the address is refused)."""

    name = forms.CharField(label="Your name", max_length=150)
    field_order = ["username", "name", "password1", "password2"]

    class Meta(UserCreationForm.Meta):
        fields = ("username",)

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.email = email


def _username_suggested(email: str) -> str:
    local = email.partition("@")[0]
    return "".join(ch for ch in local if ch.isalnum() or ch in "._+-")[:150]


@login_required
@permission_required("helpdesk.add_invitation", raise_exception=True)
@require_http_methods(["GET", "POST"])
def invite(request) -> HttpResponse:
    """Invite a teammate by email in a role; lists the invitations still pending."""
    roles = invitations.roles_grantable(request.user)
    form = InviteForm(request.POST if request.method == "POST" else None, roles=roles)
    if request.method == "POST" and form.is_valid():
        try:
            invitation, token = invitations.invitation_create(
                email=form.cleaned_data["email"], role=form.cleaned_data["role"], invited_by=request.user
            )
        except invitations.InvitationRefused as exc:
            form.add_error(None, str(exc))
        else:
            link = request.build_absolute_uri(reverse("invite-accept", args=[token]))
            sent = invitations.invitation_email_send(invitation=invitation, link=link)
            if sent:
                messages.success(request, f"Invitation emailed to {invitation.email} as {invitation.role}.")
            else:
                messages.warning(request, f"The email to {invitation.email} could not be sent: pass the link on.")
            messages.info(request, link, extra_tags=LINK_TAG)
            return redirect("invite")
    pending = Invitation.objects.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
    context = {
        "form": form,
        "pending": pending.select_related("invited_by")[:PENDING_SHOWN],
        "link_tag": LINK_TAG,
        "ttl_days": max(1, round(settings.INVITATION_TTL / 86400)),
    }
    return render(request, "helpdesk/invite.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def invite_accept(request, token: str) -> HttpResponse:
    """The invitee's page: choose a username, name and password; then signed in and sent where the role works."""
    invitation = invitations.invitation_for_token(token)
    state = invitations.invitation_state(invitation) if invitation else "unknown"
    if state != "pending":
        return _unusable(request, state)
    data = request.POST if request.method == "POST" else None
    form = AcceptForm(data, email=invitation.email, initial={"username": _username_suggested(invitation.email)})
    if request.method == "POST" and form.is_valid():
        teammate = invitations.NewTeammate(
            username=form.cleaned_data["username"],
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password1"],
        )
        try:
            user = invitations.invitation_accept(token=token, teammate=teammate)
        except invitations.InvitationRefused as exc:
            if exc.code != "username_taken":
                return _unusable(request, exc.code)
            form.add_error("username", str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(LANDING.get(invitation.role, "console"))
    context = {"form": form, "invitation": invitation}
    return render(request, "registration/invitation_accept.html", context, status=400 if form.errors else 200)


def _unusable(request, state: str) -> HttpResponse:
    context = {"state": state}
    return render(request, "registration/invitation_accept.html", context, status=UNUSABLE_STATUS.get(state, 410))
