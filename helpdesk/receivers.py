"""The staff side's answers to chat's domain signals (connected in HelpdeskConfig.ready)."""

from django.dispatch import receiver

from chat.signals import conversation_handed_off, conversation_resolved
from helpdesk import services


@receiver(conversation_handed_off, dispatch_uid="helpdesk.ticket_open_for_handoff")
def open_ticket_on_handoff(sender, *, conversation, reason, **kwargs) -> None:
    services.ticket_open_for_handoff(conversation=conversation, reason=reason)


@receiver(conversation_resolved, dispatch_uid="helpdesk.ticket_resolve")
def resolve_ticket_with_conversation(sender, *, conversation, **kwargs) -> None:
    services.ticket_resolve_for_conversation(conversation=conversation)
