"""What the helpdesk itself says to customers (system messages), in the conversation's language.

The widget localizes its own interface; these texts are stored as messages, so they are chosen on the server.
"""

from inference.language import language_base

STRINGS = {
    "handoff": {
        "en": "Connecting you with a member of our team. Please stay here; they will reply in this chat.",
        "zh": "正在为您转接人工客服,请稍候,客服会在此对话中回复您。",
    },
    "handback": {
        "en": "You are chatting with our assistant again.",
        "zh": "您已回到智能助手对话。",
    },
    "resolved": {
        "en": "This conversation was resolved. How did we do?",
        "zh": "本次对话已结束。请为我们的服务评分。",
    },
    "ended_by_customer": {
        "en": "You ended the chat. How did we do?",
        "zh": "您已结束对话。请为我们的服务评分。",
    },
    "transferred": {
        "en": "You are now chatting with another member of our team.",
        "zh": "已为您转接另一位客服。",
    },
    "contact_request": {
        "en": "No one from our team is available right now. Leave your email and we will get back to you; "
        "your message is saved as a ticket.",
        "zh": "目前没有客服在线。请留下您的邮箱,我们会尽快回复您;您的消息已保存为工单。",
    },
    "contact_saved": {
        "en": "Thanks! We will reply to {email}.",
        "zh": "谢谢!我们会回复到 {email}。",
    },
    "offline_received": {
        "en": "Thanks, we received your message and will reply to {email}.",
        "zh": "谢谢,我们已收到您的留言,会回复到 {email}。",
    },
    # The OpenAI-compatible API keeps no conversation, so there is no queue to join: it says a person is needed.
    "api_handoff": {
        "en": "This needs a member of our support team; the assistant cannot answer it.",
        "zh": "这个问题需要人工客服处理,智能助手无法回答。",
    },
}


def language_code(language: str) -> str:
    """The UI language of a conversation's language tag: zh for any Chinese, else en."""
    return "zh" if language_base(language) == "zh" else "en"


def text(key: str, language: str, **values: str) -> str:
    return STRINGS[key][language_code(language)].format(**values)


# Knowledge-grounded answers (chat.grounding).
STRINGS |= {
    "kb_lead": {"en": "From our help article “{title}”:", "zh": "根据帮助中心《{title}》："},
    "no_knowledge": {
        "en": "I can't confirm that from our help center, so I'm not going to guess.",
        "zh": "这个问题我无法根据帮助中心的资料确认，不能随意答复您。",
    },
    "no_knowledge_own": {
        "en": "I can't look up your own orders or account, so a member of our team will check it.",
        "zh": "我无法查询您的订单或账户信息，需要由客服为您核实。",
    },
    "small_talk": {
        "en": "Hello! Ask me about orders, shipping, returns, invoices or your account.",
        "zh": "您好！可以问我订单、配送、退货、发票或账户相关的问题。",
    },
    "small_talk_greeting": {
        "en": "Hello! Ask me about orders, shipping, returns, invoices or your account.",
        "zh": "您好！可以问我订单、配送、退货、发票或账户相关的问题。",
    },
    "small_talk_thanks": {
        "en": "You're welcome! Is there anything else I can help with?",
        "zh": "不客气！还有其他可以帮您的吗？",
    },
    "small_talk_goodbye": {"en": "Goodbye, and have a nice day!", "zh": "再见，祝您生活愉快！"},
    "small_talk_acknowledgement": {
        "en": "Is there anything else I can help with?",
        "zh": "还有其他可以帮您的吗？",
    },
}

# The conversation's lifecycle (chat.services.lifecycle): resolved without asking for a rating again, closed when
# idle, reopened, and no agent online for a customer whose email is known.
STRINGS |= {
    "resolved_quiet": {"en": "This conversation was resolved.", "zh": "本次对话已结束。"},
    "ended_by_customer_quiet": {"en": "You ended the chat.", "zh": "您已结束对话。"},
    "resolved_idle": {
        "en": "This conversation was closed after a period of inactivity. How did we do?",
        "zh": "由于长时间没有新消息,本次对话已自动结束。请为我们的服务评分。",
    },
    "resolved_idle_quiet": {
        "en": "This conversation was closed after a period of inactivity. Write again any time.",
        "zh": "由于长时间没有新消息,本次对话已自动结束。如需帮助,随时可以再发消息。",
    },
    "reopened": {
        "en": "The conversation was reopened; a member of our team will reply here.",
        "zh": "对话已重新打开,客服会在此回复您。",
    },
    "reopened_by_agent": {
        "en": "A member of our team reopened this conversation.",
        "zh": "客服已重新打开本次对话。",
    },
    "contact_known": {
        "en": "No one from our team is available right now. Your message is saved as a ticket and we will reply "
        "to {email}.",
        "zh": "目前没有客服在线。您的消息已保存为工单,我们会回复到 {email}。",
    },
}

# A file of a reply email that was not kept (chat.email.inbound): said under the email's text, where the customer
# and the agents both read it.
STRINGS |= {
    "email_file_not_kept": {
        "en": "[Not attached: {name} ({reason})]",
        "zh": "[未附上:{name}({reason})]",
    },
    "email_file_type": {"en": "this type of file is not accepted", "zh": "不接受此类文件"},
    "email_file_size": {"en": "over the {limit} limit", "zh": "超过 {limit} 的上限"},
    "email_file_count": {"en": "too many files in one email", "zh": "一封邮件中的文件过多"},
    "email_file_invalid": {"en": "the file could not be read", "zh": "无法读取该文件"},
}

# A file sent to the bot without a word (chat.reply): the bot cannot open files and says so, never describing it.
STRINGS |= {
    "attachment_received": {
        "en": "Thanks, I received your file {names}. I can't open or look at files myself, but a member of our "
        "team can see it. Tell me what you need help with, or write “talk to a person” to reach someone from our team.",
        "zh": "谢谢,已收到您的文件{names}。我无法打开或查看文件,但我们的客服人员可以看到它。请告诉我您需要什么帮助,"
        "或输入“转人工”联系人工客服。",
    },
}
