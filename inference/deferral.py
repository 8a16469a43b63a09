"""Deferral: when the conversation should go to a person instead of the bot.

Two signals are read here: the customer asking for a person (in Chinese or English), and the model's reserved
HANDOFF_SIGNAL, which the system prompt teaches and which is cut out of the stream before the customer sees any
character of it.
"""

import itertools
import re

HANDOFF_SIGNAL = "[[HANDOFF]]"


class HandoffIntent:
    """Why a customer message asks for a person (`handoff_intent`)."""

    REQUEST = "request"  # asks for a person: "human please", "let me talk to a manager", "转人工客服", "叫你们经理来"
    FRUSTRATION = "frustration"  # gives up on the bot: "this bot is useless", "你根本不懂", "没用"
    COMPLAINT = "complaint"  # wants to complain, which a person handles: "I'd like to file a complaint", "我要投诉"


# English. Every pattern reads text that is lower-cased, with curly apostrophes made straight and every whitespace
# run made one space (_normalized): so no pattern needs a whitespace quantifier, and the gaps between words are
# bounded windows ({0,24}) that cannot compete with each other. That keeps the time linear in the message's length.
_PERSON = (
    r"(?:agent|human|person|someone|somebody|anyone|anybody|representative|rep|operator|staff|manager|supervisor|"
    r"people|employee|team member|customer service|customer support|support team|support staff|your team|boss)"
)
_REAL = r"(?:(?:real|live|actual|proper|human|real live) )?"
_ARTICLE = r"(?:(?:a|an|the|your|some|one of your|to a|to an|to the|to your|to some) )?"
# A person noun that is a person, not part of a thing's name: "a human-sized sofa", "human hair", "manager special".
_NOT_A_THING = r"(?![\w-]| (?:sized?|shaped|hair|skin|resources|rights|made|readable|error|string|special|specials)\b)"
# Who may answer, and what they answer, when a customer asks whether a person will come ("is a human going to answer
# me?").
_ANY = r"(?:(?:a|an|any|the|some|one of your|your) )?"
_SOMEONE = (
    r"(?:human|person|agent|people|staff|someone|somebody|anyone|anybody|representative|operator|employee|"
    r"team member)s?"
)
_TO_ME = r"(?: (?:to )?(?:me|this|my (?:messages?|chat|question)|here|at all|soon|today))?"
_EN_REQUEST = re.compile(
    # A request verb, then within a few words of the same sentence the person: "let me talk to a manager",
    # "can you transfer me to a live agent", "connect me with customer service".
    r"\b(?:talk|speak|chat|deal with|reach|contact|get hold of|get in touch with|hear from|help from|connect me|"
    r"put me through|transfer me|switch me|pass me|hand me over)\b[^.?!]{0,24}?"
    rf"\b{_REAL}{_PERSON}s?{_NOT_A_THING}"
    # Wanting a person: "i want a human", "get me a person", "can i get a real human on the line".
    r"|\b(?:want|need|get me|give me|find me|bring me|send me|i'd like|i would like|(?:can|could|may) i (?:get|have))"
    rf" {_ARTICLE}{_REAL}{_PERSON}s?{_NOT_A_THING}"
    # Asking whether one is there: "is there a human i can talk to". A ping ("is anyone there?", "有人吗") is not:
    # the bot answers it, as it answers a greeting (knowledge.grounding.small_talk_kind).
    rf"|\b(?:is|are) there {_ARTICLE}(?:(?:real|live|actual|human) (?:person|human|agent|people|being)|human|person)"
    rf"{_NOT_A_THING}"
    r"|\bis (?:there )?(?:anyone|anybody|someone|somebody) (?:real|human)\b"
    # A person to act: "can a person call me back?", "have someone contact me".
    rf"|\b(?:can|could|would|will|please|have|need|want) {_ARTICLE}{_REAL}{_PERSON} "
    r"(?:call|contact|email|phone|ring|text|reach|get back to)\b"
    # Asking the bot to fetch one: "can you get someone from your team to look at this".
    rf"|\b(?:(?:can|could|would|will) you|please) (?:get|have|send|find) {_ARTICLE}{_REAL}{_PERSON}\b[^.?!]{{0,24}}?"
    r"\b(?:look|check|call|contact|help|review|sort|fix|handle|email|get back)"
    r"|\bescalate (?:this|it|my|me)\b"
    # Being passed on, with or without naming the person: "could i please be transferred", "pass me on to billing".
    r"|\b(?:transfer|pass|put|switch|forward|redirect|route) me (?:to|through|over|on)\b|\bput me in touch\b"
    r"|\b(?:can|could|may) i (?:please |just )?(?:be|get) (?:transferred|put through|passed on|escalated)\b"
    # Asking whether a person will come: "is a human going to answer me?", "will anyone ever reply?". The sentence
    # has to end there: "will a person answer the door?" and "does anyone answer the phone at the store" ask about
    # a service.
    rf"|\b(?:is|will|won't|isn't|when will) {_ANY}{_REAL}{_SOMEONE} (?:ever |actually |even |really )?"
    r"(?:going to |gonna )?(?:answer|reply|respond|read|get back|pick up|join|take over|help)"
    rf"{_TO_ME}(?= ?[.?!]|$)"
    rf"|\b(?:can|could|does|would) {_ANY}{_REAL}{_SOMEONE} (?:please |actually |even )?"
    rf"(?:answer|reply|respond|get back|take over){_TO_ME}(?= ?[.?!]|$)"
    # Whether anyone real is there: "anyone real here?", "am i talking to a real person?".
    r"|\b(?:anyone|anybody|someone|somebody) (?:real|human|alive)\b"
    r"|\bam i (?:talking|chatting|speaking) (?:to|with) (?:a |an )?(?:real |actual |live )?(?:person|human)\b"
)
# A short message that is only the request: "agent", "human please", "customer service please", "operator!".
_EN_SHORT_PERSON = {
    "agent", "agents", "human", "humans", "person", "representative", "rep", "operator", "manager", "supervisor",
    "staff", "someone", "somebody", "people",
}  # fmt: skip
_EN_SHORT_FILLER = {
    "a", "an", "the", "real", "live", "actual", "human", "please", "pls", "plz", "now", "i", "me", "need", "want",
    "talk", "to", "speak", "with", "connect", "get", "give", "can", "you", "hello", "hi", "hey", "ok", "just", "your",
    "asap", "immediately", "customer", "service", "support", "there", "chat", "one", "ugh", "argh", "omg", "seriously",
}  # fmt: skip
_EN_SHORT_WORDS = 5
_WORD = re.compile(r"[a-z']+")
_BOT = r"(?:chat ?bot|bot|ai|assistant|automated (?:system|assistant|replies|reply|answers|answer))"
_TALKING = r"(?:(?:talking|chatting|speaking|dealing) (?:to|with) )?"
_THIS = r"(?:(?:this|the|your|a|these|that) )?"
_BOT_SCORN = r"(?:(?:stupid|useless|dumb|automated|same|damn|bloody) )?"
_EN_FRUSTRATION = re.compile(
    # The bot as the subject of a complaint: "this bot is useless", "the assistant doesn't understand".
    rf"\b{_BOT}(?:'s| is| are| isn't| keeps| never| can't| cannot| doesn't| does not| just| clearly| really| totally|"
    r" so| was)\b[^.?!,]{0,20}?\b(?:useless|stupid|dumb|pointless|worthless|garbage|rubbish|terrible|awful|hopeless|"
    r"help|helping|helpful|understand|understanding|listening|idiot|joke|waste)"
    r"|\b(?:useless|stupid|dumb|pointless|worthless|silly|annoying|garbage|rubbish) (?:chat ?bot|bot|robot|ai|machine|"
    r"assistant)s?\b"
    # The bot addressed: "you're not helping", "you don't understand what i'm asking".
    r"|\byou(?:'re| are)(?: just| so| really| totally| completely)? (?:not (?:helping|helpful|listening|understanding|"
    r"getting it|making sense|answering)|no help|useless|stupid|dumb|pointless|worthless|hopeless|a joke|an idiot|"
    r"a bot|a robot|wrong again)\b"
    r"|\byou (?:don't|do not|didn't|can't|cannot|never) (?:even )?(?:understand|get it|listen|help|answer|make sense)\b"
    r"|\byou keep (?:saying|repeating|giving me|sending)\b|\bsame (?:answer|reply|thing) again\b"
    # The conversation judged: "this is useless", "that's not what i asked", "your answers make no sense".
    r"|\b(?:this|that|it)(?:'s| is| was)(?: so| completely| totally| really)? (?:useless|pointless|not helpful|"
    r"not helping|no help|a waste of time|hopeless|going nowhere|not what i asked)\b"
    r"|\b(?:this|that) (?:doesn't|does not|didn't|did not|isn't|is not) (?:help|helping|answer my question)\b"
    r"|\b(?:you|your answers?|your replies|that|this) (?:make|makes|made) no sense\b"
    r"|\b(?:i've|i have) asked (?:this|that|the same thing|already|\w+ times)\b"
    r"|\b(?:getting (?:me |us )?nowhere|(?:not|isn't|aren't) getting (?:me |us )?anywhere|going (?:nowhere|around in "
    r"circles|in circles))\b"
    # No more bot: "i don't want to talk to a bot", "no bots".
    r"|\b(?:don't|do not|dont) want (?:to (?:talk|speak|chat) (?:to|with) )?(?:a |an |the |this |your )?(?:chat ?bot|"
    r"bot|robot|machine|ai|computer|automated \w+)\b"
    r"|\bno (?:more )?(?:bots?|robots?|machines?)\b|\bnot (?:a|another|the) (?:bot|robot|machine)\b"
    # Giving up on the bot or the chat: "i'm done with this bot", "sick of talking to a machine", "fed up with you".
    # Only bots and "you" are done with: "i'm done with this chat" may just be goodbye.
    rf"|\b(?:done|finished|fed up|sick|tired|had enough|enough) (?:with|of) {_TALKING}{_THIS}{_BOT_SCORN}"
    r"(?:chat ?bots?|bots?|robots?|machines?|ai|assistant|automated \w+|you|you guys)\b"
    rf"|\b(?:fed up|sick|tired|had enough) (?:with|of) {_TALKING}{_THIS}{_BOT_SCORN}(?:chat|conversation|answers|"
    r"replies|runaround|nonsense)\b"
    r"|\bwasting (?:my|our) time\b"
    # Asking whether the bot understands at all: "do you even understand what i'm saying?", "are you even reading".
    r"|\b(?:do|can|did) you (?:even |actually |really |not |ever )?(?:understand|get|hear|listen to) (?:what i(?:'m|"
    r" am)? (?:saying|asking|said|asked|mean|meant|wrote|typed|want)|me|my question|a word)\b"
    r"|\b(?:are|were) you (?:even |actually |really )?(?:reading|listening)\b"
    r"|\byou (?:clearly|obviously|just|really|still|simply) (?:don't|do not|didn't|can't|cannot) (?:understand|get it|"
    r"listen|help)\b"
)
_EN_SHORT_FRUSTRATION = re.compile(
    r"^(?:ugh |argh |omg |seriously )?(?:so |totally |completely )?(?:useless|not helpful|pointless|no help)$"
)
# The sentences of a short message, each read on its own by the short rules: "ugh, pointless. human."
_SENTENCE = re.compile(r"[^.!?。！？]+")
_SHORT_MESSAGE_CHARS = 120
_EN_COMPLAINT = re.compile(
    r"\b(?:file|make|lodge|raise|submit|open) a (?:formal )?complaint\b|\bi(?:'d| would)? (?:want|wish|like|need) to "
    r"complain\b|\bthis is unacceptable\b"
)
# "don't", "no need to", "never" shortly before a request turn it around: "i don't need a person, just tell me".
_EN_NEGATION = re.compile(r"\b(?:don't|do not|dont|doesn't|no need|not|never|won't|without)\b")

# Chinese. Nouns for a person that are not the start of a thing: 人工费 (labour cost), 人工智能, 客服电话 (the number,
# which the bot gives: asking for it is not asking for a person), 真人CS.
_ZH_PERSON = (
    r"(?:人工(?!费|智能|成本|合成|草坪|湖|降雨|造|皮|关节|晶体|种植|授精|耳蜗|养殖|工资)|"
    r"客服(?!电话|热线|邮箱|号码|时间|工作时间|上班|地址)|真人(?!cs|秀|版|尺寸|大小|比例|娃娃|手办)|"
    r"经理|主管|领导|负责人|工作人员|活人|专员|上级)"
)
_ZH_REQUEST = re.compile(
    # A request verb, then within a few characters of the same clause the person: "叫你们经理来", "帮我转人工",
    # "请给我找一个真人", "能帮我接一下客服吗", "我要跟真人说话".
    r"(?:找|要|叫|换|转|接|联系|请(?!问)|让|呼叫|来个|(?:我想|我要|让我|我需要|能不能|可以)(?:和|跟|与))"
    rf"[^，。？！,.?!、 ]{{0,5}}?{_ZH_PERSON}"
    rf"|有(?:没有)?{_ZH_PERSON}"  # "有没有真人", "你们有人工客服吗"
    r"|换(?:一)?个人(?!信息|资料|账户|帐户|账号|帐号|地址|中心|头像|设置|主页|名字|名称|密码|简介|隐私)|换人"
    r"|你们(?:的)?(?:经理|主管|领导|负责人|人工|客服)(?:呢|在哪|在吗|人呢)"  # "你们经理呢"
    # Calling for the staff: "客服在吗", "人工客服呢", "有客服吗" (above). Not a question about the service:
    # "客服电话是多少", "客服几点上班" (_ZH_PERSON leaves out the person before 电话, 上班 and the like).
    rf"|{_ZH_PERSON}(?:客服|人员|小姐姐|小哥哥)?(?:在吗|在么|在嘛|在不在|在线吗|呢|人呢|有人吗|去哪了|哪去了|快来|快出来|出来)"
    # Any person at all: "找个人来", "来个人处理一下", "叫个真人过来". Not someone to do a job: "找个人帮我安装".
    r"|(?:找|叫|来|派|喊)(?:一)?个(?:真|活)?人(?:来|过来|出来|跟我|和我|与我|处理|回答|回复|解决|聊|说|对话|沟通|吧|啊|呗|"
    r"行吗|可以吗|好吗|(?=[，。？！,.?!~]|$))"
)
# A message that is only the request once punctuation and politeness are gone: "人工", "客服", "人工！！".
_ZH_SHORT = re.compile(
    r"^(?:请|麻烦|我要|我想要|要)?(?:人工|客服|真人|人工客服|真人客服|客服人员|工作人员|人工服务|经理|主管)(?:呢|吧|啊|呀|谢谢)?$"
)
_ZH_NOISE = re.compile(r"[\s\W_]+")
_ZH_BOT = r"(?:^|你|这个|这|破|垃圾|笨|傻|什么|智障|你们的|你们这个)机器人"
_ZH_FRUSTRATION = re.compile(
    # The bot as the subject: "机器人听不懂", "这个机器人太笨了".
    rf"{_ZH_BOT}[^，。？！,.?!]{{0,6}}?(?:听不懂|不懂|没用|太笨|笨死|真笨|好笨|答非所问|不行|不明白|解决不了|"
    r"什么都不知道|有什么用|废物|垃圾|智障|傻|蠢)"
    # The bot addressed: "你根本不懂", "你说的都没用", "说了半天你都答非所问".
    r"|你(?:们)?(?:说的|回答的|的回答)?(?:根本|完全|真的|就是|压根|一直|总是|都|还是|到底|也)?(?:不懂|听不懂|没听懂|"
    r"看不懂|不明白|不理解|答非所问|没用|太笨|好笨|真笨|好蠢|真蠢|在胡说|胡说八道|乱说|乱回答|说的不对|帮不了|"
    r"解决不了)"
    r"|答非所问|说了也没用|有什么用啊|一点用(?:都|也)没有|毫无用处|(?:跟|和)没说一样|等于没说|说了等于白说"
    r"|不(?:想|要)(?:再)?(?:和|跟|与)?机器人(?:聊|说|对话|沟通)|(?:不要|别)(?:再)?(?:用)?机器人"
    # Not understood: "你能不能听懂我说的话", "你到底懂不懂", "听不懂人话". Not a language question: "你听得懂粤语吗".
    r"|你(?:们)?[^，。？！,.?!]{0,6}?(?:得懂|不懂|懂|不明白|明白|不理解|理解|没懂|没明白|没理解)(?:我|人话)"
    r"|你(?:们)?[^，。？！,.?!]{0,4}?(?:懂不懂|听得懂吗|听懂了吗|听懂没|看得懂吗|明白不明白|明不明白)"
    r"|不懂人话|说人话"
    # Giving up on the bot: "不想跟你说了", "跟你说不清楚", "受够了这个机器人", "浪费我时间".
    r"|不(?:想|要|愿意)(?:再)?(?:和|跟|与)你(?:们)?(?:说|聊|讲|谈|沟通|对话|废话)"
    r"|(?:跟|和|与)(?:你|机器人)(?:们)?(?:根本|真是|简直|完全)?(?:说|讲|聊|沟通)不(?:清|通|明白|下去)|懒得(?:跟|和)你"
    r"|受够(?:了)?(?:你|机器人|这个机器人)|浪费我(?:的)?时间"
)
_ZH_SHORT_FRUSTRATION = re.compile(r"^(?:真|太|完全|根本|一点)?没用(?:了|的)?(?:吧|啊|呀|吗|呢)?$")
_ZH_COMPLAINT = re.compile(r"我(?:要|想|想要|必须|需要)(?:投诉|举报)|投诉你们|怎么投诉|要投诉")
# 不 of a question ("能不能", "要不要", "是不是") negates nothing.
_ZH_NEGATION = re.compile(r"(?<![能可是要行会])不|别|无需|没必要")
# How far before a request a negation still turns it around, in characters.
_NEGATION_REACH = {"en": 14, "zh": 3}

_SPACES = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\uff07": "'"})


def _normalized(text: str) -> str:
    return _SPACES.sub(" ", text.translate(_APOSTROPHES)).strip().lower()


def _unnegated(pattern: re.Pattern, text: str, negation: re.Pattern, reach: int) -> bool:
    """Whether `pattern` matches somewhere that no negation stands shortly before ("i don't need a person")."""
    for match in pattern.finditer(text):
        if not negation.search(text, max(0, match.start() - reach), match.start()):
            return True
    return False


def _short_english_request(text: str) -> bool:
    words = _WORD.findall(text)
    if not words or len(words) > _EN_SHORT_WORDS or any(w not in _EN_SHORT_PERSON | _EN_SHORT_FILLER for w in words):
        return False
    pairs = set(itertools.pairwise(words))
    return any(w in _EN_SHORT_PERSON for w in words) or bool(pairs & {("customer", "service"), ("customer", "support")})


def handoff_intent(text: str) -> str | None:
    """Why a customer message asks for a person (a HandoffIntent), or None when it does not.

    Recognised in Chinese and English: short requests ("人工", "找客服", "human please",
    "agent"), paraphrases ("can I talk to someone", "叫你们经理来", "能不能换个人"), being passed on ("could I be
    transferred"), calling for the staff ("客服在吗", "is a human going to answer me?", "找个人来"), frustration
    aimed at the bot ("this bot is useless", "I'm done with this bot", "机器人听不懂", "你能不能听懂我说的话",
    "没用") and complaints ("我要投诉"). Questions that only
    mention such words are not requests: "is a human-sized sofa in stock?", "do your agents speak French?",
    "人工费多少钱", and "客服电话是多少", which asks for a number the bot can give. bench/handoff_intent.py
    measures precision and recall on a labelled set.

    Whitespace runs become one space first, and the patterns never let two quantifiers compete for the same
    characters (each gap between words is one bounded window): the time stays linear in the message's length,
    whatever a customer crafts ("want" and 4,000 tabs took a second with two whitespace quantifiers side by side).
    """
    text = _normalized(text)
    if not text:
        return None
    if _EN_COMPLAINT.search(text) or _ZH_COMPLAINT.search(text):
        return HandoffIntent.COMPLAINT
    if _unnegated(_EN_REQUEST, text, _EN_NEGATION, _NEGATION_REACH["en"]):
        return HandoffIntent.REQUEST
    if _unnegated(_ZH_REQUEST, text, _ZH_NEGATION, _NEGATION_REACH["zh"]):
        return HandoffIntent.REQUEST
    if _EN_FRUSTRATION.search(text) or _ZH_FRUSTRATION.search(text):
        return HandoffIntent.FRUSTRATION
    if len(text) <= _SHORT_MESSAGE_CHARS:
        return _short_intent(text)
    return None


def _short_intent(text: str) -> str | None:
    """A sentence of a short message that is only a request or only a verdict: "agent", "人工!!", "ugh, pointless"."""
    for sentence in _SENTENCE.findall(text):
        bare = _ZH_NOISE.sub("", sentence)
        if _short_english_request(sentence) or _ZH_SHORT.match(bare):
            return HandoffIntent.REQUEST
        if _ZH_SHORT_FRUSTRATION.match(bare) or _EN_SHORT_FRUSTRATION.match(" ".join(_WORD.findall(sentence))):
            return HandoffIntent.FRUSTRATION
    return None


def customer_asks_for_human(text: str) -> bool:
    """Whether a customer message asks for a person rather than the bot (`handoff_intent`)."""
    return handoff_intent(text) is not None


class DeferralFilter:
    """Passes streamed text through, holding back anything that could be the start of HANDOFF_SIGNAL.

    `feed()` returns what is safe to show now; once the signal is seen, `deferred` is True and nothing more is
    shown. `flush()` returns what was held back when the stream ends without the signal.
    """

    def __init__(self, signal: str = HANDOFF_SIGNAL):
        self.signal = signal
        self.held = ""
        self.deferred = False

    def feed(self, text: str) -> str:
        if self.deferred:
            return ""
        buffer = self.held + text
        index = buffer.find(self.signal)
        if index >= 0:
            self.deferred = True
            self.held = ""
            return buffer[:index]
        # Keep the longest tail of the buffer that is a prefix of the signal.
        for size in range(min(len(self.signal) - 1, len(buffer)), 0, -1):
            if self.signal.startswith(buffer[-size:]):
                self.held = buffer[-size:]
                return buffer[:-size]
        self.held = ""
        return buffer

    def flush(self) -> str:
        held, self.held = ("", "") if self.deferred else (self.held, "")
        return held
