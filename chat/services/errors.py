"""Why a chat service refused: each carries a machine-readable `code`; its text is for people."""


class MessageRejected(ValueError):
    """A message that is not accepted.

    `retry_after` (seconds) is set when the same message will be accepted later (a rate limit).
    """

    def __init__(self, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class ConversationRefused(ValueError):
    """A new conversation that is not opened (rate limit); `retry_after` says when to try again, in seconds."""

    def __init__(self, code: str, message: str, retry_after: int):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class ActionRefused(ValueError):
    """A staff or customer action that the conversation's state does not allow."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
