"""Files in a conversation: a customer's or an agent's message that carries files (its text a caption, possibly
empty), through the same rules and events as any message of theirs (chat.services.messages).

A file is checked (chat.attachments: its type by its bytes, its size, an image's pixels) and written to Django's
default storage before the conversation is locked, so the lock is never held while bytes go to a disk or a bucket;
the message and its Attachment rows are then stored in one transaction. Files written for a message that is not
stored after all (refused, or a resend of one already stored) are deleted again.
"""

import logging
import uuid

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage

from chat import ratelimit
from chat.attachments import CheckedFile, FileRefused, file_check
from chat.models import Attachment, Conversation, Message, attachment_path, attachment_thumbnail_path
from chat.serializers import ATTACHMENTS_ATTR
from chat.services.errors import ActionRefused, MessageRejected
from chat.services.messages import message_post_agent, message_post_customer

logger = logging.getLogger(__name__)

# Files a customer may send into one conversation an hour, beside the limit on messages a minute: each can be
# ATTACHMENT_MAX_BYTES of storage.
CUSTOMER_FILES_PER_HOUR = 30


def attachment_post_customer(
    *, conversation_id: uuid.UUID, upload, caption="", client_id: str = "", name: str | None = None
) -> tuple[Message, bool]:
    """A customer message carrying `upload` (a Django UploadedFile), its caption possibly empty.

    As message_post_customer: the same rate limit, the conversation reopened if it was resolved, the bot asked to
    answer in bot mode (told of the file by name and type; a file without a word gets a fixed, honest reply, see
    chat.reply). A resend with the same `client_id` returns the stored message and `created=False`.
    Raises MessageRejected (the file's refusal codes are chat.attachments.file_check's).
    """
    checked = _checked(upload, name)
    return attachments_post_customer(
        conversation_id=conversation_id, files=[checked], caption=caption, client_id=client_id
    )


def attachments_post_customer(
    *, conversation_id: uuid.UUID, files: list[CheckedFile], caption="", client_id: str = "", via: str = ""
) -> tuple[Message, bool]:
    """A customer message carrying files already checked (chat.attachments.file_check), which this closes; as
    attachment_post_customer otherwise. Each file counts against CUSTOMER_FILES_PER_HOUR. `via="email"`: the files
    of a reply email (chat.email.inbound)."""
    pending: list[Attachment] = []
    try:
        verdict = ratelimit.hit(
            f"files:{conversation_id}", limit=CUSTOMER_FILES_PER_HOUR, window_s=3600, cost=max(1, len(files))
        )
        if not verdict.allowed:
            raise MessageRejected(
                "rate_limited",
                f"You have sent many files in this conversation. Try again in {verdict.retry_after} s.",
                verdict.retry_after,
            )
        for checked in files:
            pending.append(_store(checked))
    except BaseException:
        _discard(pending)
        raise
    finally:
        for checked in files:
            checked.close()
    try:
        message, created = message_post_customer(
            conversation_id=conversation_id, content=caption, client_id=client_id, via=via, attach=_attacher(pending)
        )
    except BaseException:
        _discard(pending)
        raise
    if not created:
        _discard(pending)
    return message, created


def attachment_post_agent(*, conversation_id: uuid.UUID, agent, upload, caption="", client_id: str = "") -> Message:
    """An agent's reply carrying `upload`, its caption possibly empty; only the conversation's assignee may send it
    (ActionRefused("not_assigned") otherwise, checked before the file is stored and again under the row lock)."""
    assigned = Conversation.objects.filter(
        pk=conversation_id, status=Conversation.Status.AGENT, assignee_id=agent.pk
    ).exists()
    if not assigned:
        raise ActionRefused("not_assigned", "Claim the conversation before replying.")
    checked = _checked(upload, None)
    try:
        pending = [_store(checked)]
    finally:
        checked.close()
    try:
        message = message_post_agent(
            conversation_id=conversation_id,
            agent=agent,
            content=caption,
            client_id=client_id,
            attach=_attacher(pending),
        )
    except BaseException:
        _discard(pending)
        raise
    if not any(a.message_id == message.pk for a in pending):  # a resend: the stored message already has its files
        _discard(pending)
    return message


def _checked(upload, name: str | None) -> CheckedFile:
    try:
        return file_check(upload, name=name)
    except FileRefused as exc:
        raise MessageRejected(exc.code, str(exc)) from None


def _store(checked: CheckedFile) -> Attachment:
    """An unsaved Attachment whose file (and thumbnail) are already in the default storage."""
    attachment = Attachment(
        id=uuid.uuid4(),
        name=checked.name,
        content_type=checked.content_type,
        size=checked.size,
        width=checked.width,
        height=checked.height,
    )
    attachment.file.name = default_storage.save(attachment_path(attachment, checked.name), File(checked.file))
    if checked.thumbnail is not None:
        try:
            path = attachment_thumbnail_path(attachment, checked.name)
            attachment.thumbnail.name = default_storage.save(path, ContentFile(checked.thumbnail))
        except BaseException:
            _discard([attachment])
            raise
    return attachment


def _attacher(pending: list[Attachment]):
    """The `attach` hook of message_post_*: the Attachment rows of a message just created, in its transaction, kept
    on the message so that it is serialized (and read by the bot) with them without another query."""

    def attach(message: Message) -> None:
        for attachment in pending:
            attachment.conversation_id = message.conversation_id
            attachment.message = message
        Attachment.objects.bulk_create(pending)
        setattr(message, ATTACHMENTS_ATTR, list(pending))

    return attach


def _discard(pending: list[Attachment]) -> None:
    """Delete stored files whose message was not stored (never raises: a leftover file is only wasted space)."""
    for attachment in pending:
        for field in (attachment.file, attachment.thumbnail):
            if field.name:
                try:
                    default_storage.delete(field.name)
                except Exception:
                    logger.exception("could not delete the unused attachment file %s", field.name)
