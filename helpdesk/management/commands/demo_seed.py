"""manage.py demo_seed [--if-empty]: the demo's canned responses and fallback rules, in English and Chinese.

The texts point to the demo help center's articles (knowledge/demo) and repeat only what those articles say, so
they never contradict the bot's answers. Without --if-empty, whatever of them is missing is added (by title and
name); with it, nothing is written when any canned response or fallback rule exists, so an operator's own set is
never mixed with the demo's.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from helpdesk.models import CannedResponse
from inference.models import FallbackRule

# (title, shortcut, body); the console fills in {{customer_name}}, {{agent_name}} and {{company_name}}.
CANNED_RESPONSES = [
    ("Greeting", "greet", "Hi {{customer_name}}, this is {{agent_name}} from {{company_name}}. How can I help you?"),
    (
        "Ask for the order number",
        "order",
        "Could you send me your order number? It starts with NW and is in your order confirmation email.",
    ),
    (
        "Returns and refunds",
        "refund",
        "How returns and refunds work is explained at https://northwind.example/help/returns. "
        "I can help you start a return if you like.",
    ),
    (
        "Closing",
        "bye",
        "Is there anything else I can help you with? Thank you for contacting {{company_name}}, have a good day!",
    ),
    (
        "问候（中文）",
        "greet-zh",
        "{{customer_name}}您好，我是{{company_name}}的客服{{agent_name}}，请问有什么可以帮您？",
    ),
    ("询问订单号（中文）", "order-zh", "请提供您的订单号：订单号以NW开头，可在“我的订单”中查看。"),
    (
        "退货退款说明（中文）",
        "refund-zh",
        "退货和退款的规则请见 https://northwind.example.cn/help/returns 。如需申请退货，我可以帮您办理。",
    ),
    ("结束语（中文）", "bye-zh", "请问还有其他可以帮您的吗？感谢您联系{{company_name}}，祝您生活愉快！"),
]

# The staff's words for when the engine fails: (name, language, priority, keywords, answer). A request for a
# person comes first, with the ways to reach one the contact article gives.
FALLBACK_RULES = [
    (
        "Asks for a person",
        "en",
        10,
        ["a human", "real person", "agent", "representative", "talk to someone", "speak to someone"],
        "Our assistant cannot answer right now. To reach a person, call customer service at 1-800-555-0142 "
        "(Monday to Friday 9 a.m. to 6 p.m. ET, Saturday 10 a.m. to 4 p.m. ET) or email support@northwind.example.",
    ),
    (
        "要求人工",
        "zh",
        10,
        ["人工", "转人工", "找客服", "真人", "客服人员"],
        "智能助手暂时无法回答。联系人工客服请拨打客服热线400-820-6688（每天9:00至21:00，北京时间），"
        "或发邮件至 kefu@northwind.example.cn 。",
    ),
    (
        "Opening hours and contact",
        "en",
        50,
        ["opening hours", "business hours", "when are you open", "phone number", "contact", "customer service"],
        "Customer service is open Monday to Friday from 9 a.m. to 6 p.m. ET and Saturday from 10 a.m. to 4 p.m. "
        "ET: call 1-800-555-0142 or email support@northwind.example. "
        "More at https://northwind.example/help/contact.",
    ),
    (
        "客服时间与联系方式",
        "zh",
        50,
        ["营业时间", "客服时间", "几点", "客服电话", "联系方式", "邮箱"],
        "客服热线400-820-6688的服务时间为每天9:00至21:00（北京时间），客服邮箱为 kefu@northwind.example.cn 。"
        "详情见 https://northwind.example.cn/help/contact 。",
    ),
    (
        "Returns and refunds",
        "en",
        100,
        ["return", "refund"],
        "How returns and refunds work is explained at https://northwind.example/help/returns.",
    ),
    ("退货退款", "zh", 100, ["退货", "退款"], "退货和退款的规则请见 https://northwind.example.cn/help/returns 。"),
]


@transaction.atomic
def demo_seed(*, if_empty: bool) -> tuple[int, int]:
    """Add the missing demo canned responses and rules; returns how many of each were added."""
    if if_empty and (CannedResponse.objects.exists() or FallbackRule.objects.exists()):
        return 0, 0
    canned = 0
    for title, shortcut, body in CANNED_RESPONSES:
        _, made = CannedResponse.objects.get_or_create(title=title, defaults={"shortcut": shortcut, "body": body})
        canned += made
    rules = 0
    for name, language, priority, keywords, answer in FALLBACK_RULES:
        _, made = FallbackRule.objects.get_or_create(
            name=name,
            language=language,
            defaults={"priority": priority, "keywords": "\n".join(keywords), "answer": answer},
        )
        rules += made
    return canned, rules


class Command(BaseCommand):
    help = "Add the demo's canned responses and fallback rules (English and Chinese) that are missing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when any canned response or fallback rule exists."
        )

    def handle(self, *args, if_empty, **options):
        canned, rules = demo_seed(if_empty=if_empty)
        if if_empty and not (canned or rules):
            self.stdout.write("There are canned responses or fallback rules already: no demo set written.")
            return
        self.stdout.write(f"Added {canned} canned responses and {rules} fallback rules.")
