"""The Django project (settings, urls, asgi, celery) and the staff side of the helpdesk."""

from helpdesk.celery import app as celery_app

__all__ = ["celery_app"]
