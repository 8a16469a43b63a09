"""What one customer socket has been sent, so that a frame the channel layer lost is noticed and made good.

The channel layer only carries news and drops it when a process's inbox is full (channels-redis logs that at
INFO and carries on). The database is the truth, so a socket that notices a hole catches up from it on the same
socket, without the widget reconnecting:
- a message whose seq jumps past the last one sent: the messages in between are read again (a private note, which
  customers never see, makes a harmless jump);
- a streaming reply's piece that does not start where the previous one ended (each says its `offset`), or a piece
  of a reply whose start was never sent: the client is sent the reply as stored and keeps what it has until the end;
- a streaming reply that falls quiet: after STREAM_QUIET_S the socket reads the reply's row; finished, it sends the
  `done` that was lost; withdrawn, it says so; still streaming, it waits again.
Every hole found is counted in helpdesk_socket_frames_missed_total{kind}.
"""

from dataclasses import dataclass, field

from chat.metrics import FRAMES_MISSED

# Seconds a streaming reply may stay silent before its socket checks the database for a lost `done`. Healthy
# replies fall quiet too (a slow first token, the fact guard holding a sentence back): a check is one indexed read.
STREAM_QUIET_S = 5.0


@dataclass
class _Stream:
    offset: int | None  # characters sent so far; None once a piece was missed (the client waits for the end)
    heard_at: float  # loop time of the last news of this reply


@dataclass
class Delivery:
    """The last message seq sent to one socket and the streaming replies it is following."""

    sent_seq: int = 0
    streams: dict[int, _Stream] = field(default_factory=dict)

    def message_sent(self, message: dict, now: float, *, from_database: bool = False) -> None:
        """A whole message frame went out: from an event, or `from_database` (the hello's backlog, a catch-up)."""
        seq = message["seq"]
        self.sent_seq = max(self.sent_seq, seq)
        if message.get("state") != "streaming":
            self.streams.pop(seq, None)
        elif from_database:
            # A streaming reply is stored empty until it ends: what streamed before is unknown here, so its pieces
            # are not checked (the client keeps what it has) and only its end is watched for.
            self.streams.setdefault(seq, _Stream(None, now))
        else:  # the reply starts now
            self.streams[seq] = _Stream(0, now)

    def message_skips(self, seq: int) -> bool:
        """Whether a message event jumps past messages this socket was never sent (catch up before sending it)."""
        if seq > self.sent_seq + 1:
            FRAMES_MISSED.labels(kind="message").inc()
            return True
        return False

    def delta_missed(self, seq: int, offset: int, text: str, now: float) -> str | None:
        """Note a piece about to be sent; what was missed before it: "start" (the reply's opening message),
        "delta" (a piece), or None."""
        stream = self.streams.get(seq)
        if stream is None:
            FRAMES_MISSED.labels(kind="message").inc()
            self.streams[seq] = _Stream(None, now)
            return "start"
        missed = None
        if stream.offset is not None and offset != stream.offset:
            FRAMES_MISSED.labels(kind="delta").inc()
            missed = "delta"
        stream.offset = None if missed or stream.offset is None else offset + len(text)
        stream.heard_at = now
        return missed

    def ended(self, seq: int) -> None:
        """The reply is done or withdrawn."""
        self.streams.pop(seq, None)

    def quiet(self, now: float) -> list[int]:
        """Streaming replies with no news for STREAM_QUIET_S: their `done` may have been lost."""
        return [seq for seq, stream in self.streams.items() if now - stream.heard_at >= STREAM_QUIET_S]

    def heard_at(self, seq: int) -> float | None:
        """When the last news of a followed reply came; None once it ended."""
        stream = self.streams.get(seq)
        return None if stream is None else stream.heard_at

    def still_streaming(self, seq: int, now: float) -> None:
        """The database says the reply is still streaming: wait another quiet period."""
        stream = self.streams.get(seq)
        if stream is not None:
            stream.heard_at = now

    def done_recovered(self, seq: int) -> None:
        """The reply had ended and its `done` never came: it is sent from the database."""
        FRAMES_MISSED.labels(kind="done").inc()
        self.streams.pop(seq, None)
