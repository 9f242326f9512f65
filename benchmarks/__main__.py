"""``python -m benchmarks``: the benchmark suite, one table of measured numbers and targets.

    python -m benchmarks            # every item, the issue's full settings
    python -m benchmarks --quick    # smaller settings, a few minutes
    python -m benchmarks --only overhead --only scaling
    python -m benchmarks --list

Items (see benchmarks/README.md, "Suite"): overhead (1 wrapper overhead and 2 trial start
latency), early_stop (3), throughput (4), utilisation (5), scaling (6), short_trials (7,
issue 19: 8 one-epoch 2-worker trials, ours vs hand-written Ray, ABC CBA), epoch_time (8,
issue 19: the steady-state epoch of 20-epoch trials, ours and ours pooled over raw), and the
optional scripts of other issues when they exist (search_quality, strategy_throughput; with their own
defaults, and under --quick only when named with --only). Results go to
``benchmarks/results/<UTC date-time>.json`` (``--out`` to change). Run it alone on the machine
(``flock /tmp/heavy.lock python -m benchmarks``): the numbers are timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from benchmarks.suite import common, optional
from benchmarks.suite.common import Measurement

ITEMS = ("overhead", "start_phases", "early_stop", "throughput", "utilisation", "scaling",
         "short_trials", "epoch_time")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def item_runners() -> dict[str, Callable[[bool], list[Measurement]]]:
    runners: dict[str, Callable[[bool], list[Measurement]]] = {
        name: (lambda quick, _n=name: importlib.import_module(f"benchmarks.suite.{_n}").run(quick))
        for name in ITEMS}
    for name, path in optional.available().items():
        runners[name] = optional.runner(name, path)
    return runners


def format_table(rows: list[Measurement]) -> str:
    head = ("item", "measured", "value", "target", "met?")
    body = [(r.item, r.name, r.measured_text(), r.target,
             {True: "yes", False: "NO", None: "-"}[r.met]) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in (head, *body)]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def write_json(path: str, rows: list[Measurement], meta: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(_jsonable({"meta": meta, "results": [asdict(r) for r in rows]}), fh, indent=1)
        fh.write("\n")


def main(argv: list[str] | None = None,
         runners: dict[str, Callable[[bool], list[Measurement]]] | None = None) -> int:
    runners = runners if runners is not None else item_runners()
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings (minutes)")
    parser.add_argument("--only", action="append", choices=sorted(runners), metavar="ITEM",
                        help=f"run only this item (repeatable): {', '.join(runners)}")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    parser.add_argument("--list", action="store_true", help="list the items and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(runners))
        return 0
    selected = args.only or list(runners)
    # Other issues' scripts have no quick setting: --quick runs them only when named.
    skipped = [n for n in selected if n not in ITEMS] if args.quick and not args.only else []
    selected = [n for n in selected if n not in skipped]
    started = dt.datetime.now(dt.timezone.utc)
    meta = {"started_utc": started.isoformat(timespec="seconds"), "quick": args.quick,
            "items": selected, "cpu_count": os.cpu_count(), "gpu": "none",
            "platform": platform.platform(), "python": sys.version.split()[0],
            "load1_start": common.load1()}
    rows: list[Measurement] = []
    failed = []
    path = args.out or os.path.join(RESULTS_DIR, started.strftime("%Y-%m-%dT%H%M%SZ")
                                    + ("-quick" if args.quick else "") + ".json")
    for name in selected:
        print(f"== {name} ({'quick' if args.quick else 'full'}) load {common.load1()}",
              flush=True)
        t0 = time.time()
        try:
            rows += runners[name](args.quick)
        except Exception as exc:  # noqa: BLE001 - one failed item must not lose the others
            traceback.print_exc()
            failed.append(name)
            rows.append(Measurement(name, f"FAILED: {type(exc).__name__}: {exc}"[:120], None,
                                    "", False))
        print(f"== {name}: {time.time() - t0:.0f} s", flush=True)
        write_json(path, rows, {**meta, "partial": True})  # kept if a later item is killed
    for name in skipped:
        rows.append(Measurement(f"opt {name}", "skipped in --quick (--only to run it)", None,
                                "", None))
    meta["load1_end"] = common.load1()
    meta["duration_s"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)
    write_json(path, rows, meta)
    print()
    print(format_table(rows))
    print(f"\n{os.cpu_count()} cores, no GPU; load {meta['load1_start']} -> {meta['load1_end']};"
          f" {meta['duration_s']:.0f} s; written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
