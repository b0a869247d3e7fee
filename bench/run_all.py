"""`make bench`: every benchmark in turn, results in bench/results/*.json, a summary at the end.

Order: cold_import first (no servers running yet), then write_count, then ingest_ratio, then reconcile
on a 200,000-line file (50–70 s; results in reconcile_200k.json), then seizure_requests (about 25 s) and
package_requests (about 60 s: the three 带押过户 packages), then load --quick (about 45 s; results in
load_quick.json). The load figure is the full run, a separate command of 3–6 minutes:
`.venv/bin/python -m bench.load` (results in load.json).
The goal's reconcile figure is the 1,000,000-line one, a separate command that takes 4–6 minutes:
`.venv/bin/python -m bench.reconcile --lines 1000000 --rounds 1` (results in reconcile.json).
A benchmark that fails is reported and the others still run; the exit status is 1 only then.
Goals not met are figures, not failures.

    .venv/bin/python -m bench.run_all
"""
from __future__ import annotations

import time
import traceback
from types import SimpleNamespace
from typing import Any

from bench import cold_import, ingest_ratio, load, package_requests, reconcile, seizure_requests, write_count
from bench.common import REPO, log, machine, write_result

RECONCILE_LINES = 200_000  # fits the make bench time; the goal's 1,000,000-line figure is run apart
reconcile_small = SimpleNamespace(NAME=f"reconcile_{RECONCILE_LINES // 1000}k", summary=reconcile.summary,
                                  run=lambda: reconcile.run(lines=RECONCILE_LINES, rounds=3))

load_quick = SimpleNamespace(NAME="load_quick", summary=load.summary, run=lambda: load.run(quick=True))

BENCHMARKS = [cold_import, write_count, ingest_ratio, reconcile_small, seizure_requests, package_requests, load_quick]


def main() -> int:
    started = time.monotonic()
    lines: list[str] = []
    overview: dict[str, Any] = {}
    failed = False
    for module in BENCHMARKS:
        log(f"{module.NAME} …")
        t0 = time.monotonic()
        try:
            result = module.run()
            write_result(module.NAME, result)
            lines += module.summary(result)
            overview[module.NAME] = {"seconds": round(time.monotonic() - t0, 1), "ok": True}
        except Exception as exc:
            failed = True
            traceback.print_exc()
            lines.append(f"{module.NAME}: FAILED ({type(exc).__name__}: {str(exc)[:300]})")
            overview[module.NAME] = {"seconds": round(time.monotonic() - t0, 1), "ok": False, "error": str(exc)[:2000]}
        log(f"{module.NAME} done in {time.monotonic() - t0:.0f} s")
    total = round(time.monotonic() - started, 1)
    write_result("summary", {"total_seconds": total, "benchmarks": overview, "lines": lines})
    m = machine()
    print(f"\n== make bench: nproc {m['nproc']}, Python {m['python']}, moto {m['moto']}, {total} s ==")
    print("\n".join(lines))
    print(f"results: {(REPO / 'bench' / 'results').relative_to(REPO)}/*.json")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
