"""A logging handler that turns the channel layer's drop notice into a metric (LOGGING in helpdesk.settings)."""

import logging

from chat.metrics import CHANNEL_LAYER_DROPPED


class ChannelLayerDropCounter(logging.Handler):
    """Counts the channel layer's drops from its own log line ("N of M channels over capacity in group G", at INFO:
    channels-redis gives no other signal) and says it again as a warning, where operators look."""

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" not in str(record.msg):
            return
        dropped = record.args[0] if isinstance(record.args, tuple) and record.args else 1
        CHANNEL_LAYER_DROPPED.inc(dropped if isinstance(dropped, int) and dropped > 0 else 1)
        logging.getLogger("chat.delivery").warning("channel layer full, news dropped: %s", record.getMessage())
