"""Email with customers, both ways.

Out (queued as chat.tasks): an agent's reply to a customer who has no chat open, the acknowledgement of a left
message, the transcript on request. Each is rendered from templates/email/ (text and HTML) in the conversation's
language, carries a per-conversation Reply-To (addresses), a thread per conversation (Message-ID / References), and
an unsubscribe link and List-Unsubscribe header (unsubscribe); suppressed addresses are never emailed.

In: a reply to one of those emails comes back through Mailgun's inbound webhook (views) or the self-hosted SMTP
receiver (smtp_receiver, `manage.py email_receive`); both hand it to inbound, which checks the address and the
sender, strips the quoted history (quotes) and posts it as the customer's message.
"""
