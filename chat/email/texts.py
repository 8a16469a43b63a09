"""What the customer emails say, in English and Chinese (chosen by the conversation's language)."""

from chat.strings import language_code

TEXTS = {
    "en": {
        "agent_reply_subject": "New reply from {company}",
        "left_message_subject": "We received your message ({company})",
        "transcript_subject": "Your conversation with {company}",
        "greeting": "Hello {name},",
        "greeting_anonymous": "Hello,",
        "agent_reply_intro": "{company} replied to your conversation:",
        "left_message_intro": "Thanks for your message. Our team will answer as soon as possible; we will email you "
        "here. Your message:",
        "transcript_intro": "Here is the transcript of your conversation with {company}, as you asked.",
        "reopen": "Open the conversation",
        "reply_hint": "You can also just reply to this email.",
        "you": "You",
        "assistant": "Assistant",
        "support": "Support",
        "file": "File (open the conversation to see it)",
        "footer": "You get this email because you wrote to {company} support.",
        "unsubscribe": "Unsubscribe from these emails",
    },
    "zh": {
        "agent_reply_subject": "{company} 回复了您",
        "left_message_subject": "我们已收到您的留言({company})",
        "transcript_subject": "您与 {company} 的对话记录",
        "greeting": "{name},您好:",
        "greeting_anonymous": "您好:",
        "agent_reply_intro": "{company} 在您的对话中回复:",
        "left_message_intro": "感谢您的留言。我们的团队会尽快回复,并发送到此邮箱。您的留言:",
        "transcript_intro": "按您的要求,以下是您与 {company} 的对话记录。",
        "reopen": "打开对话",
        "reply_hint": "您也可以直接回复此邮件。",
        "you": "您",
        "assistant": "智能助手",
        "support": "客服",
        "file": "文件(打开对话查看)",
        "footer": "您收到此邮件是因为您联系过 {company} 客服。",
        "unsubscribe": "退订此类邮件",
    },
}


def texts(language: str, **values: str) -> dict[str, str]:
    """Every text in the conversation's language (zh for any Chinese tag, else en), with `values` filled in."""
    return {key: value.format(**values) for key, value in TEXTS[language_code(language)].items()}
