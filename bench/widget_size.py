"""Size of the embeddable widget as customers download it: raw, and gzip-compressed as WhiteNoise serves it.

Reads static/chat/widget.js from the checkout; needs no database, no Redis and no server.

    .venv/bin/python bench/widget_size.py [--json PATH]
"""

import argparse
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line  # noqa: E402

WIDGET = ROOT / "static" / "chat" / "widget.js"
# The budget: what one script tag may cost a customer's page, compressed. chat/tests/test_widget_asset.py holds it.
# 16 KiB until issue 17, whose verified identity, attachments and transcript requests took it to about 19 KiB;
# 24 KiB leaves room without letting it grow unseen (Intercom's and Chatwoot's loaders alone are larger).
BUDGET_GZIP_BYTES = 24 * 1024


def sizes() -> tuple[int, int]:
    raw = WIDGET.read_bytes()
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"$ {command_line()}", flush=True)
    raw, gz = sizes()
    share = gz / BUDGET_GZIP_BYTES
    print(f"widget.js: {raw:,} bytes raw, {gz:,} bytes gzipped (budget {BUDGET_GZIP_BYTES:,}, {share:.0%})")
    if args.json:
        figures = {
            "command": command_line(),
            "raw_bytes": raw,
            "gzip_bytes": gz,
            "budget_gzip_bytes": BUDGET_GZIP_BYTES,
        }
        args.json.write_text(json.dumps(figures, indent=2))
    if gz > BUDGET_GZIP_BYTES:
        sys.exit("over budget")


if __name__ == "__main__":
    main()
