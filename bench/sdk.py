"""The browser SDK's size as served, against Alloy's embedded.js (2,160 bytes gzipped).

    uv run python bench/sdk.py [--json] [--check]

Reads static/embedded.js through the service's own loader (rjsmin, as `GET /embedded.js`
serves it) and reports the source, the minified bytes, and their gzip at level 9 (what the
service sends) and level 6 (a typical proxy or CDN default). A size, not a timing: it is the
same on every machine, and tests/integration/test_sdk_serving.py enforces the budget.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Sequence

from embedded_ui.sdk import GZIP_BUDGET, load_sdk

ALLOY_GZIPPED = 2160  # bytes: cdn.runalloy.com/scripts/embedded.js, gzipped (the baseline)


def measure() -> dict[str, int | float | str]:
    asset = load_sdk()
    gzip9 = len(gzip.compress(asset.body, compresslevel=9, mtime=0))
    gzip6 = len(gzip.compress(asset.body, compresslevel=6, mtime=0))
    return {
        "hash": asset.digest,
        "source_bytes": asset.source_size,
        "served_bytes": len(asset.body),
        "gzip9_bytes": gzip9,
        "gzip6_bytes": gzip6,
        "served_gzip_bytes": len(asset.gzipped),
        "budget_bytes": GZIP_BUDGET,
        "ratio_to_alloy": round(len(asset.gzipped) / ALLOY_GZIPPED, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--check", action="store_true", help="exit 3 when over the budget")
    options = parser.parse_args(argv)
    result = measure()
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"embedded.{result['hash']}.js")
        print(f"  source (hand-written, with comments) {result['source_bytes']:>6,} bytes")
        print(f"  served (rjsmin)                      {result['served_bytes']:>6,} bytes")
        for level in (9, 6):
            size = result[f"gzip{level}_bytes"]
            print(f"  gzip -{level}                              {size:>6,} bytes")
        print(
            f"  budget {GZIP_BUDGET:,} bytes (Alloy's embedded.js gzipped): "
            f"served gzip is {result['ratio_to_alloy']:.2f}x Alloy's"
        )
    over = int(result["served_gzip_bytes"]) > GZIP_BUDGET
    if over:
        print(f"over budget by {int(result['served_gzip_bytes']) - GZIP_BUDGET} bytes")
    return 3 if over and options.check else 0


if __name__ == "__main__":
    sys.exit(main())
