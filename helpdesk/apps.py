from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Helpdesk"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from chat import availability
        from helpdesk import checks, receivers  # noqa: F401  (registers the checks, connects the receivers)
        from helpdesk.roles import admin_group_sync_after_migrate
        from helpdesk.services import agents_available

        availability.agents_available_register(agents_available)
        # Connected after django.contrib.auth's own receiver, which creates each app's permissions first.
        post_migrate.connect(admin_group_sync_after_migrate, dispatch_uid="helpdesk.admin_group_sync")
