from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Helpdesk"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from chat import availability
        from helpdesk import checks, receivers  # noqa: F401  (registers the checks, connects the receivers)
        from helpdesk.roles import roles_sync_after_migrate
        from helpdesk.services import agents_available

        availability.agents_available_register(agents_available)
        # Connected after django.contrib.auth's own receiver, which creates each app's permissions first; for this
        # app, the last in INSTALLED_APPS, so every other app's permissions exist too.
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="helpdesk.roles_sync")
