"""The customer's satisfaction rating of a resolved conversation."""

import uuid

from django.db import transaction

from chat import signals
from chat.models import Conversation, Rating
from chat.services.base import conversation_lock
from chat.services.errors import ActionRefused


@transaction.atomic
def rating_create(*, conversation_id: uuid.UUID, score, comment="") -> Rating:
    """The customer's one rating of a resolved conversation (1-5 stars and an optional comment)."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ActionRefused("invalid_rating", "A rating is a whole number of stars from 1 to 5.")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise ActionRefused("invalid_rating", "The comment must be text of at most 2000 characters.")
    conversation = conversation_lock(conversation_id)
    if conversation.status != Conversation.Status.RESOLVED:
        raise ActionRefused("not_resolved", "A conversation can be rated once it is resolved.")
    if Rating.objects.filter(conversation=conversation).exists():
        raise ActionRefused("already_rated", "This conversation has already been rated. Thank you!")
    rating = Rating.objects.create(conversation=conversation, score=score, comment=comment.strip())
    signals.conversation_rated.send(sender=Conversation, conversation=conversation, rating=rating)
    return rating
