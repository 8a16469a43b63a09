from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Helpdesk"

    def ready(self) -> None:
        from chat import availability
        from helpdesk import checks, receivers  # noqa: F401  (registers the checks, connects the receivers)
        from helpdesk.services import agents_available

        availability.agents_available_register(agents_available)
