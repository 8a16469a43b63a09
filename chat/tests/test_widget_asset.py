"""Static properties of static/chat/widget.js that no browser test would notice until too late."""

import re

from bench.widget_size import BUDGET_GZIP_BYTES, WIDGET, sizes

SOURCE = WIDGET.read_text()


def test_the_widget_stays_within_its_size_budget():
    _raw, gz = sizes()
    assert gz <= BUDGET_GZIP_BYTES, f"widget.js is {gz} bytes gzipped; the budget is {BUDGET_GZIP_BYTES}"


def test_the_widget_never_parses_html_or_code():
    # Messages are rendered by building elements and setting textContent; nothing may turn text into markup.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in SOURCE, sink


def test_the_widget_loads_nothing_from_elsewhere():
    # Offline-capable: no CDN, fonts or analytics; every request goes to the helpdesk origin of the script tag.
    urls = set(re.findall(r"https?://[^\s\"'`)]+", SOURCE))
    # The SVG namespace is a name, not a request; HOST is the placeholder in the usage comment.
    assert urls <= {"http://www.w3.org/2000/svg", "https://HOST/static/chat/widget.js"}, urls
    assert "import(" not in SOURCE and "importScripts" not in SOURCE


def test_the_widget_isolates_itself_in_a_shadow_root():
    assert "attachShadow" in SOURCE and ":host" in SOURCE
