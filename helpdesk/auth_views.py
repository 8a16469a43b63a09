"""Sign-in and password reset with throttling (helpdesk.login_throttle); the rest of django.contrib.auth's views
are used as they are."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy

from helpdesk.login_throttle import LoginForm, password_reset_allowed, password_reset_email_allowed


def _throttled_status(response: HttpResponse) -> HttpResponse:
    """429 for a sign-in page shown again because the attempt was throttled (the form says why and for how long)."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    if form is not None and getattr(form, "throttled", False):
        response.status_code = 429
    return response


class LoginView(auth_views.LoginView):
    form_class = LoginForm

    def form_invalid(self, form):
        return _throttled_status(super().form_invalid(form))


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's sign-in (its form, AdminLoginForm, is set in helpdesk.admin), answering 429 when throttled."""
    return _throttled_status(admin.site.login(request))


class PasswordResetView(auth_views.PasswordResetView):
    success_url = reverse_lazy("password_reset_done")

    def post(self, request, *args, **kwargs):
        retry_after = password_reset_allowed(request)
        if retry_after:
            response = render(
                request,
                "registration/password_reset_throttled.html",
                {"retry_minutes": max(1, round(retry_after / 60))},
                status=429,
            )
            response["Retry-After"] = str(retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        # Over the per-email limit: the answer of a sent email, whether or not an account has this address.
        if not password_reset_email_allowed(form.cleaned_data["email"]):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
