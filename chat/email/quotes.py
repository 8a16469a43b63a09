"""A reply email's own words: the quoted history and the signature mail clients add are cut off.

What clients put under a reply: Gmail and Apple Mail "On <date>, <name> wrote:" (possibly wrapped over two lines),
their Chinese forms "在 <date>,<name> 写道:" and "<name> 于<date>写道:", Outlook's "-----Original Message-----",
its "From: ... Sent: ..." block (after a line of underscores in Outlook on the web), "发件人: ... 发送时间: ...",
lines quoted with ">", the "-- " signature delimiter, and "Sent from my iPhone" and its kin.
"""

import re

_WROTE = re.compile(
    r"^\s*(On\b.{0,300}\bwrote:|在.{0,300}写道[::]|.{0,300}\s?于\s?.{0,200}写道[::]|.{0,300}\bschrieb\b.{0,200}:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message|原始邮件|转发邮件)\s*-{2,}\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\s*\**\s*(From|发件人)\s*\**\s*[::]", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\**\s*(Sent|Date|To|Subject|发送时间|日期|收件人|主题)\s*\**\s*[::]", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(-- ?|--)$")
_SENT_FROM = re.compile(
    r"^\s*(Sent from my \w+|Sent from (Mail|Outlook|Yahoo Mail)\b|Get Outlook for \w+"
    r"|发自我的\s?\w+|从我的\s?\w+\s?发送)",
    re.IGNORECASE,
)


def _cut_at(lines: list[str]) -> int:
    """The index of the first line of quoted history or signature (len(lines) if none)."""
    for i, line in enumerate(lines):
        if _ORIGINAL.match(line) or _SIGNATURE.match(line) or _SENT_FROM.match(line):
            return i
        if _WROTE.match(line):
            return i
        # "On Tue, 3 Dec 2026 at 10:00, Acme Support <reply+...>" / "wrote:" wrapped by the client.
        if i + 1 < len(lines) and re.match(r"^\s*On\b", line) and _WROTE.match(line + " " + lines[i + 1].strip()):
            return i
        if _SEPARATOR.match(line) and any(_HEADER_FROM.match(next_) for next_ in lines[i + 1 : i + 3]):
            return i
        if _HEADER_FROM.match(line) and any(_HEADER_NEXT.match(next_) for next_ in lines[i + 1 : i + 4]):
            return i
    return len(lines)


def reply_text(body: str) -> str:
    """The new text of a reply email: before the quoted history and signature, without ">" lines, trimmed."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = lines[: _cut_at(lines)]
    kept = [line.rstrip() for line in lines if not line.lstrip().startswith(">")]
    return "\n".join(kept).strip()
