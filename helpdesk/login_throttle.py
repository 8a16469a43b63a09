"""Throttling of the staff sign-in and the password reset, with the project's rate limiter (chat.ratelimit).

Sign-in: failed attempts are counted per username and per client address; past either limit, further attempts are
refused (429, with a message saying when to try again) before the password is even checked, so guessing stops.
Only failures count, and a successful sign-in clears its username's count, so staff who mistype once are not locked
out. Both the staff sign-in page and the admin's use these forms.

Password reset: requests are counted per client address (past the limit: 429) and per email address (past the
limit: the same answer as a sent email, and nothing sent), so the answer never tells whether an account exists.

Usernames and emails are hashed in the cache's keys: the cache is no place for them.
"""

import hashlib

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest

from chat import ratelimit
from chat.http import client_ip
from chat.metrics import RATE_LIMITED


def _digest(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def _login_keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    return [
        (f"login:user:{_digest(username)}", settings.LOGIN_FAILURES_PER_USERNAME),
        (f"login:ip:{client_ip(request)}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def login_retry_after(request: HttpRequest, username: str) -> int:
    """Seconds until sign-in may be tried again for `username` from this address; 0: it may be tried now."""
    window = settings.LOGIN_THROTTLE_WINDOW
    waits = [
        ratelimit.peek(key, limit=limit, window_s=window).retry_after for key, limit in _login_keys(request, username)
    ]
    return max(waits)


def login_failure_record(request: HttpRequest, username: str) -> None:
    for key, limit in _login_keys(request, username):
        ratelimit.hit(key, limit=limit, window_s=settings.LOGIN_THROTTLE_WINDOW)


def login_success_record(username: str) -> None:
    ratelimit.reset(f"login:user:{_digest(username)}")


def throttled_message(retry_after: int) -> str:
    minutes = max(1, round(retry_after / 60))
    return f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


class ThrottledLoginMixin:
    """For an AuthenticationForm: refuse while throttled (code "throttled"), count failures, clear on success."""

    throttled = False

    def clean(self):
        username = (self.data.get("username") or "")[:150]
        retry_after = login_retry_after(self.request, username)
        if retry_after:
            self.throttled = True
            RATE_LIMITED.labels(channel="login", limit="sign_in").inc()
            raise forms.ValidationError(throttled_message(retry_after), code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_failure_record(self.request, username)
            raise
        login_success_record(username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The staff sign-in page's form."""


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's sign-in form: the same limits, or the admin would be the way around them."""


def password_reset_allowed(request: HttpRequest) -> int:
    """Count a reset request from this address; the seconds to wait when over the limit, else 0."""
    verdict = ratelimit.hit(f"reset:ip:{client_ip(request)}", limit=settings.PASSWORD_RESET_PER_ADDRESS, window_s=3600)
    if not verdict.allowed:
        RATE_LIMITED.labels(channel="login", limit="reset_address").inc()
    return verdict.retry_after


def password_reset_email_allowed(email: str) -> bool:
    """Count a reset request for `email`, whether or not an account has it; False when over the limit."""
    verdict = ratelimit.hit(f"reset:email:{_digest(email)}", limit=settings.PASSWORD_RESET_PER_EMAIL, window_s=3600)
    if not verdict.allowed:
        RATE_LIMITED.labels(channel="login", limit="reset_email").inc()
    return verdict.allowed
