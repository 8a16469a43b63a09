"""Size of the embeddable widget as customers download it: raw, and gzip-compressed as WhiteNoise serves it.

.venv/bin/python bench/widget_size.py
"""

import gzip
import sys
from pathlib import Path

WIDGET = Path(__file__).resolve().parent.parent / "static" / "chat" / "widget.js"
# The budget: what one script tag may cost a customer's page, compressed. chat/tests/test_widget_asset.py holds it.
BUDGET_GZIP_BYTES = 16 * 1024


def sizes() -> tuple[int, int]:
    raw = WIDGET.read_bytes()
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


def main() -> None:
    raw, gz = sizes()
    share = gz / BUDGET_GZIP_BYTES
    print(f"widget.js: {raw:,} bytes raw, {gz:,} bytes gzipped (budget {BUDGET_GZIP_BYTES:,}, {share:.0%})")
    if gz > BUDGET_GZIP_BYTES:
        sys.exit("over budget")


if __name__ == "__main__":
    main()
