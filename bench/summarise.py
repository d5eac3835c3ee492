"""Combine several ``bench/run.py`` result files into one table of medians.

    uv run python bench/summarise.py bench/results/run-*.json

On a shared machine one run is one sample of a noisy process. This prints, per route and
server configuration, the median over the files of req/s, p50, p99, the ratio to the baseline
of the same run and the server's CPU per request, with the range of req/s and the median share
of the machine that other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROUTES = ("GET /hello (baseline)", "POST /users", "GET /users/{id}", "GET /users/{id}/token")


def summarise(paths: Sequence[Path]) -> str:
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    databases = set()
    for path in paths:
        report = json.loads(path.read_text())
        databases.add(report["options"]["database"])
        for row in report["results"]:
            rows[(row["server"], row["route"], row["workers"])].append(row)
    if not rows:
        return "no results"
    lines = [
        f"{len(paths)} runs ({', '.join(sorted(databases))}); medians over the runs",
        "",
        "| route | server | runs | req/s (min-max) | p50 ms | p99 ms | ratio to baseline "
        "| server CPU ms/req | other load |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    order = sorted({(server, workers) for server, _, workers in rows})
    for server, workers in order:
        for route in ROUTES:
            found = rows.get((server, route, workers))
            if not found:
                continue
            rps = [r["rps"] for r in found]

            def median(key: str, found: list[dict[str, Any]] = found) -> float:
                return float(statistics.median(r[key] for r in found))

            lines.append(
                f"| {route} | {server} x{workers} | {len(found)} "
                f"| {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
                f"| {median('p50_ms'):.1f} | {median('p99_ms'):.1f} | {median('ratio'):.3f}x "
                f"| {median('server_cpu_ms_per_request'):.2f} "
                f"| {median('other_cpu_percent'):.0f}% |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", nargs="+", type=Path, help="JSON files from bench/run.py")
    options = parser.parse_args(argv)
    missing = [str(p) for p in options.results if not p.is_file()]
    if missing:
        print(f"summarise: no such file: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(summarise(options.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
