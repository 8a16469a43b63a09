import pytest

from inference.deferral import HANDOFF_SIGNAL, DeferralFilter, HandoffIntent, customer_asks_for_human, handoff_intent


@pytest.mark.parametrize(
    "text",
    [
        "转人工",
        "我要人工客服",
        "human",
        "Human please!",
        "agent",
        "Can I talk to an agent?",
        "I want to speak with a real person",
        "please connect me to someone from staff",
        "I want a human",
        "I need an agent now",
    ],
)
def test_requests_for_a_person_are_recognised(text):
    assert customer_asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I reset my password?",
        "My user agent string is wrong in the app",
        "Is this product safe for human consumption?",
        "人工智能是什么",
    ],
)
def test_ordinary_questions_are_not_requests_for_a_person(text):
    assert not customer_asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "人工",
        "找客服",
        "转人工客服",
        "客服",
        "human please",
        "agent",
        "Operator!",
        "customer service please",
        "人工！！",
    ],
)
def test_short_requests_are_recognised(text):
    assert handoff_intent(text) == HandoffIntent.REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "let me talk to a manager",
        "Get me a supervisor now",
        "can I talk to someone?",
        "is there a human I can talk to",
        "Can you transfer me to a live agent please",
        "Can a person call me back?",
        "叫你们经理来",
        "有没有真人",
        "能不能换个人",
        "请给我找一个真人",
        "你是机器人吧？我要跟真人说话",
    ],
)
def test_paraphrased_requests_are_recognised(text):
    assert handoff_intent(text) == HandoffIntent.REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "this bot is useless",
        "you're not helping",
        "You don’t understand what I'm asking",  # a curly apostrophe, as phones type it
        "I don't want to talk to a bot",
        "机器人听不懂",
        "你根本不懂",
        "没用",
        "说了半天你都答非所问",
    ],
)
def test_frustration_with_the_bot_is_recognised(text):
    assert handoff_intent(text) == HandoffIntent.FRUSTRATION


@pytest.mark.parametrize(
    "text",
    [
        "Could I please be transferred to someone who can actually help?",
        "pass me on to billing",
        "Hello? Is a human going to answer me?",
        "will anyone ever reply?",
        "anyone real here?",
        "客服在吗",
        "人工客服呢",
        "有客服吗",
        "不想跟你说了，找个人来",
        "来个人处理一下",
    ],
)
def test_being_passed_on_and_calling_for_the_staff_are_requests(text):
    assert handoff_intent(text) == HandoffIntent.REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "I'm done with this bot",
        "sick of talking to a machine",
        "do you even understand what I'm saying?",
        "你能不能听懂我说的话",
        "你到底懂不懂",
        "不想跟你说了",
        "跟你说不清楚",
    ],
)
def test_giving_up_on_the_bot_and_not_being_understood_are_frustration(text):
    assert handoff_intent(text) == HandoffIntent.FRUSTRATION


@pytest.mark.parametrize(
    "text",
    [
        "will a person answer the door?",
        "does anyone answer the phone at the Berlin store",
        "Can the warranty be transferred to a new owner?",
        "I'm done with this chat, thanks",
        "I'm tired of waiting for my parcel",
        "客服几点上班",
        "有客服电话吗",
        "找个人帮我安装要多少钱",
        "你听得懂粤语吗",
        "怎么更换个人头像",
        "组装太浪费时间了",
    ],
)
def test_the_wider_rules_leave_questions_about_the_service_alone(text):
    assert handoff_intent(text) is None


def test_a_request_after_frustration_counts_as_a_request():
    assert handoff_intent("this bot is useless, get me a person") == HandoffIntent.REQUEST


@pytest.mark.parametrize("text", ["I'd like to file a complaint", "我要投诉"])
def test_complaints_go_to_a_person(text):
    assert handoff_intent(text) == HandoffIntent.COMPLAINT


@pytest.mark.parametrize(
    "text",
    [
        "is a human-sized sofa in stock?",
        "do your agents speak French?",
        "how many people work there",
        "customer service hours?",
        "is the manager special discount still on?",
        "the agent at the post office lost my parcel",
        "Can I pick up my order in person?",
        "客服电话是多少",  # the number: the bot can give it, and the customer can call
        "人工费多少钱",
        "扫地机器人充不上电怎么办",
        "这个优惠券我还没用过",
        "怎么更换个人头像",
    ],
)
def test_questions_that_only_mention_a_person_are_not_requests(text):
    assert handoff_intent(text) is None


@pytest.mark.parametrize(
    "text", ["I don't need a person, just tell me the shipping cost", "不需要人工，谢谢", "no need to talk to an agent"]
)
def test_a_negated_request_is_not_a_request(text):
    assert handoff_intent(text) is None


@pytest.mark.parametrize("text", ["Is anybody there?", "Hello? Anyone?", "有人吗", "在吗？"])
def test_a_ping_is_answered_by_the_bot_like_a_greeting(text):
    assert handoff_intent(text) is None


def test_a_question_form_is_no_negation():
    assert handoff_intent("要不要转人工") == HandoffIntent.REQUEST


def run(pieces: list[str]) -> tuple[str, bool]:
    stream = DeferralFilter()
    shown = "".join(stream.feed(p) for p in pieces) + stream.flush()
    return shown, stream.deferred


def test_the_signal_is_cut_out_even_when_split_across_pieces():
    shown, deferred = run(["I'm sorry, ", "[[HAND", "OFF]] and more"])
    assert deferred and shown == "I'm sorry, "
    assert "[" not in shown


def test_the_signal_alone_shows_nothing_at_all():
    stream = DeferralFilter()
    shown = [stream.feed(c) for c in HANDOFF_SIGNAL]
    assert stream.deferred and shown == [""] * len(HANDOFF_SIGNAL)


def test_text_that_only_looks_like_the_start_is_released():
    assert run(["a [[ list ", "[[HAND but not quite"]) == ("a [[ list [[HAND but not quite", False)
    assert run(["ends with [["]) == ("ends with [[", False)
