"""The agent's own notification settings (/console/notifications/): which emails they want."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from helpdesk.models import AgentPresence
from helpdesk.notifications import agent_notifications_set


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("helpdesk.use_console", raise_exception=True)
def notification_settings(request) -> HttpResponse:
    """GET: the agent's choices; POST: save them (CSRF-protected like every staff form)."""
    if request.method == "POST":
        agent_notifications_set(
            agent=request.user,
            left_messages=request.POST.get("left_messages") == "on",
            waiting=request.POST.get("waiting") == "on",
        )
        return redirect(request.path + "?saved=1")
    presence = AgentPresence.objects.filter(user=request.user).first()
    context = {
        "left_messages": bool(presence and presence.notify_left_messages),
        "waiting": bool(presence and presence.notify_waiting),
        "saved": request.GET.get("saved") == "1",
        "waiting_minutes": max(1, settings.NOTIFY_WAITING_AFTER // 60),
    }
    return render(request, "helpdesk/notifications.html", context)
