"""Reconciling a 1,000,000-line settlement file: time of `reconcile` ÷ time of merely parsing the same file
(same run, goal <= 3), and memory (goal <= 200 MB).

No network, no AWS: the file is generated on the fly into a temporary directory and streamed from disk
(an open text file: the same line iterator `reader.stream_lines` hands over from S3).

Data: a synthetic settlement day. Ledger entries shaped like chalicelib.money.ledger.Entry dicts, three
sub-orders per order, one refund in 50, one entry in 97 without the platform's sub-order number (matched
through our ids). The file is made from the ledger, with one in a thousand of each discrepancy: an
entry left out (missing_in_file), a wrong amount, a duplicated line, a line nobody booked
(missing_in_hub) and a malformed line. The child checks the report against the expected counts, so
the time measured is that of the right answer.

Each measurement runs in its own child process, after the ledger is built there (the hub holds the
day's ledger; building it is not reconciling):
- time: parse-only and reconcile interleaved, `--rounds` times each; CPU time of the process (leaves
  out waiting for a core, not a cache shared with other load: reconcile's ratio rises on a busy
  machine) and wall time; medians. Reconcile includes indexing the ledger.
- memory: tracemalloc peak of reconcile's own allocations (index + stream + report; the ledger already
  in memory, not counted), of parse-only, and of reconcile against an empty ledger (every line unknown);
  without tracemalloc: the process's peak RSS (VmHWM) for parse-only alone, the RSS of the ledger's
  dicts, and how far reconcile raises the peak RSS above them.

    .venv/bin/python -m bench.reconcile [--lines 1000000] [--rounds 3] [--formats bank_govpay,csv]
"""
from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Iterator

from bench.common import REPO, log, publish_result

NAME = "reconcile"
GOAL_RATIO = 3.0
GOAL_MB = 200.0
DAY = "2024-03-15"
YMD = DAY.replace("-", "")
MAX_LINES = 5_000_000
CHILD_TIMEOUT_S = 1200


# --------------------------------------------------------------------------------------------------
# the synthetic day


def synthetic_entry(i: int) -> dict:
    n, j = divmod(i, 3)
    order = f"C{YMD}{n:07d}-E-1"
    sub = f"{order}-{j + 1:02d}"
    refund = i % 50 == 7
    kind = "refund" if refund else "payment"
    return {
        "entry_id": f"{order}:{sub}:" + ("refund:R1" if refund else "pay"),
        "order_id": order, "sub_order_id": sub, "kind": kind,
        "debit": "clearing:sz-ccb-govpay",
        "credit": "nontax:440300-BDC:103044" if j == 0 else "treasury:440300-GK:101010101",
        "amount_fen": (i * 7919) % 100_000 + 100,
        "platform_order_id": f"ZR{YMD}{n:010d}",
        "platform_sub_order_id": None if i % 97 == 5 else f"ZR{YMD}{n:010d}{j + 1:02d}",
    }


def _file_row(e: dict) -> dict:
    """The platform's line for an entry: it always knows its own sub-order number."""
    return {"kind": e["kind"], "platform_order_id": e["platform_order_id"],
            "platform_sub_order_id": e["platform_sub_order_id"] or e["platform_order_id"] + e["sub_order_id"][-2:],
            "order_id": e["order_id"], "sub_order_id": e["sub_order_id"], "amount_fen": e["amount_fen"],
            "txn_time": YMD + "093000"}


def _plan(lines: int) -> Iterator[tuple[str, int, dict | None]]:
    """(what, entry index, row) for each detail line until `lines` lines: what is ok | amount | dup |
    unknown | malformed, or skip (an entry with no line, row None)."""
    made = 0
    i = 0
    while made < lines:
        e = synthetic_entry(i)
        r = i % 1000
        if r == 1:
            yield "skip", i, None
        elif r == 2:
            made += 1
            yield "amount", i, {**_file_row(e), "amount_fen": e["amount_fen"] + 1}
        else:
            made += 1
            yield "ok", i, _file_row(e)
            extra = {3: "dup", 4: "unknown", 5: "malformed"}.get(r)
            if extra and made < lines:
                made += 1
                if extra == "dup":
                    yield "dup", i, _file_row(e)
                elif extra == "unknown":
                    yield "unknown", i, {**_file_row(e), "platform_order_id": f"ZX{YMD}{i:010d}",
                                         "platform_sub_order_id": f"ZX{YMD}{i:010d}01", "order_id": f"X{i}",
                                         "sub_order_id": f"X{i}-01"}
                else:
                    yield "malformed", i, _file_row(e)
        i += 1


def expected(lines: int) -> dict:
    """The ledger's size and the report's counts for a file of `lines` detail lines; the totals."""
    from chalicelib.reconcile import totals_of

    counts: collections.Counter = collections.Counter()
    last = -1

    def good_rows():
        nonlocal last
        for what, i, row in _plan(lines):
            last = i
            counts[what] += 1
            if row is not None and what != "malformed":
                yield row

    totals = totals_of(good_rows())
    ledger_n = last + 1
    exp = {"records": lines, "ledger_entries": ledger_n, "matched": counts["ok"], "amount_mismatch": counts["amount"],
           "missing_in_hub": counts["unknown"], "missing_in_file": counts["skip"], "duplicate": counts["dup"],
           "malformed": counts["malformed"]}
    return {"ledger_entries": ledger_n, "counts": exp, "totals": totals}


def write_file(fmt: str, path: Path, lines: int, totals: dict) -> None:
    from chalicelib.reconcile import bank_govpay_detail, csv_row, render_bank_govpay, render_csv

    detail = bank_govpay_detail if fmt == "bank_govpay" else csv_row
    written = 0
    with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
        header = render_bank_govpay(DAY, [], totals=totals) if fmt == "bank_govpay" else render_csv(DAY, [])
        fh.write(next(header) + "\n")
        line = ""
        for what, _, row in _plan(lines):
            if row is None:
                continue
            if what == "malformed":  # the previous line spoiled: a bad amount / one column too many
                line = line[:-3] + "x.y" if fmt == "bank_govpay" else line + ",extra"
            else:
                line = detail(row, DAY)
            fh.write(line + "\n")
            written += 1
        if fmt == "bank_govpay":
            fh.write(f"T|{written}\n")
    if written != lines:
        raise RuntimeError(f"wrote {written} detail lines, wanted {lines}")


# --------------------------------------------------------------------------------------------------
# the child: one measurement


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    """Peak RSS of this process image (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    across fork + exec, so a child of a big parent (make bench) would report the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _parse_only(fmt: str, path: str) -> int:
    from chalicelib.reconcile import parse

    with open(path, encoding="utf-8", errors="replace") as fh:
        tail = collections.deque(parse(fmt, fh), maxlen=1)
    return len(tail)


def _reconcile(fmt: str, path: str, ledger: list, totals: dict) -> dict:
    from chalicelib.reconcile import parse, reconcile

    with open(path, encoding="utf-8", errors="replace") as fh:
        return reconcile(parse(fmt, fh), ledger, declared_totals=totals, settlement_date=DAY)


def _check(report: dict, exp: dict) -> list[str]:
    wrong = [f"{k}: {report['summary'][k]} != {v}" for k, v in exp["counts"].items() if report["summary"][k] != v]
    if report["problems"]:
        wrong.append(f"problems: {report['problems'][:3]}")
    return wrong


def _timed(fn) -> tuple[float, float, Any]:
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def child(job: dict) -> dict:
    import chalicelib.reconcile  # noqa: F401  (imported before anything is measured)

    fmt, path, exp, mode = job["format"], job["path"], job["expected"], job["mode"]
    out: dict[str, Any] = {"mode": mode, "format": fmt}
    if mode == "rss_parse":  # nothing else in the process: the parser's own footprint
        base = _rss_now_mb()
        _parse_only(fmt, path)
        out.update(rss_before_mb=round(base, 1), maxrss_mb=round(_maxrss_mb(), 1))
        return out
    rss_before_ledger = _rss_now_mb()
    ledger = [synthetic_entry(i) for i in range(exp["ledger_entries"])]
    gc.collect()
    if mode == "time":
        rss_with_ledger = _rss_now_mb()
        maxrss_with_ledger = _maxrss_mb()
        parse_cpu, parse_wall, reco_cpu, reco_wall = [], [], [], []
        report = None
        maxrss_first = None
        for _ in range(job["rounds"]):
            c, w, _n = _timed(lambda: _parse_only(fmt, path))
            parse_cpu.append(c)
            parse_wall.append(w)
            c, w, report = _timed(lambda: _reconcile(fmt, path, ledger, exp["totals"]))
            reco_cpu.append(c)
            reco_wall.append(w)
            if maxrss_first is None:  # the first reconcile in this process: no freed memory to reuse yet
                maxrss_first = _maxrss_mb()
            wrong = _check(report, exp)
            if wrong:
                raise RuntimeError("the report is not the expected one: " + "; ".join(wrong))
            del report
        out.update(parse_cpu_s=[round(x, 3) for x in parse_cpu], parse_wall_s=[round(x, 3) for x in parse_wall],
                   reconcile_cpu_s=[round(x, 3) for x in reco_cpu], reconcile_wall_s=[round(x, 3) for x in reco_wall],
                   rss_before_ledger_mb=round(rss_before_ledger, 1), rss_with_ledger_mb=round(rss_with_ledger, 1),
                   maxrss_before_mb=round(maxrss_with_ledger, 1), maxrss_after_first_mb=round(maxrss_first, 1),
                   maxrss_after_mb=round(_maxrss_mb(), 1))
        return out
    if mode == "trace":
        tracemalloc.start()
        _parse_only(fmt, path)
        out["parse_peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        report = _reconcile(fmt, path, ledger, exp["totals"])
        out["reconcile_peak_traced_mb"] = round((tracemalloc.get_traced_memory()[1] - base) / 2**20, 1)
        out["report_json_kb"] = round(len(json.dumps(report)) / 1024, 1)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        empty = _reconcile(fmt, path, [], exp["totals"])  # every record unknown: the bounded unknown-key memory
        out["reconcile_empty_ledger_peak_traced_mb"] = round((tracemalloc.get_traced_memory()[1] - base) / 2**20, 1)
        out["empty_ledger_missing_in_hub"] = empty["summary"]["missing_in_hub"]
        tracemalloc.stop()
        return out
    raise ValueError(mode)


def _run_child(job: dict) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bench.reconcile", "--child", json.dumps(job)], cwd=REPO,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise RuntimeError(f"child {job['mode']} {job['format']} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["child_seconds"] = round(time.monotonic() - t0, 1)
    return out


# --------------------------------------------------------------------------------------------------
# the parent


def run(lines: int = 1_000_000, rounds: int = 3, formats: tuple[str, ...] = ("bank_govpay", "csv")) -> dict:
    lines = max(10, min(lines, MAX_LINES))
    rounds = max(1, min(rounds, 10))
    started = time.monotonic()
    exp = expected(lines)
    log(f"{lines} lines, ledger of {exp['ledger_entries']} entries; expected {exp['counts']}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-reconcile-") as tmp:
        for fmt in formats:
            path = Path(tmp) / f"settlement-{YMD}.{'txt' if fmt == 'bank_govpay' else 'csv'}"
            t0 = time.monotonic()
            write_file(fmt, path, lines, exp["totals"])
            size_mb = path.stat().st_size / 2**20
            log(f"{fmt}: {size_mb:.0f} MB written in {time.monotonic() - t0:.1f} s")
            job = {"format": fmt, "path": str(path), "expected": exp, "rounds": rounds}
            timing = _run_child({**job, "mode": "time"})
            log(f"{fmt}: timed")
            traced = _run_child({**job, "mode": "trace"})
            rss = _run_child({**job, "mode": "rss_parse"})
            log(f"{fmt}: memory measured")
            path.unlink()
            ratio_cpu = statistics.median(timing["reconcile_cpu_s"]) / statistics.median(timing["parse_cpu_s"])
            ratio_wall = statistics.median(timing["reconcile_wall_s"]) / statistics.median(timing["parse_wall_s"])
            results[fmt] = {
                "file_mb": round(size_mb, 1),
                "parse_only_cpu_s_median": statistics.median(timing["parse_cpu_s"]),
                "reconcile_cpu_s_median": statistics.median(timing["reconcile_cpu_s"]),
                "ratio_cpu": round(ratio_cpu, 2),
                "ratio_wall": round(ratio_wall, 2),
                "reconcile_own_peak_traced_mb": traced["reconcile_peak_traced_mb"],
                "parse_only_peak_traced_mb": traced["parse_peak_traced_mb"],
                "reconcile_empty_ledger_peak_traced_mb": traced["reconcile_empty_ledger_peak_traced_mb"],
                "parse_only_process_maxrss_mb": rss["maxrss_mb"],
                "process_rss_with_ledger_mb": timing["rss_with_ledger_mb"],
                "ledger_rss_mb": round(timing["rss_with_ledger_mb"] - timing["rss_before_ledger_mb"], 1),
                "reconcile_rss_growth_mb": round(timing["maxrss_after_first_mb"] - timing["rss_with_ledger_mb"], 1),
                "reconcile_rss_growth_all_rounds_mb": round(timing["maxrss_after_mb"] - timing["rss_with_ledger_mb"],
                                                            1),
                "process_maxrss_ledger_and_reconcile_mb": timing["maxrss_after_mb"],
                "goal_ratio_met": ratio_cpu <= GOAL_RATIO,
                "goal_memory_met": traced["reconcile_peak_traced_mb"] <= GOAL_MB,
                "raw": {"time": timing, "trace": traced, "rss_parse": rss},
            }
    return {
        "what": "reconcile a settlement file streamed from disk against the day's ledger, vs parsing the same file",
        "lines": lines, "rounds": rounds, "expected": exp["counts"],
        "formats": results,
        "goal": {"ratio_max": GOAL_RATIO, "memory_mb_max": GOAL_MB,
                 "memory_measured_as": "tracemalloc peak of reconcile's own allocations (ledger index, stream, "
                                       "report), the ledger the hub holds not counted (its RSS: ledger_rss_mb)"},
        "seconds": round(time.monotonic() - started, 1),
    }


def summary(result: dict[str, Any]) -> list[str]:
    out = [f"reconcile: {result['lines']} lines, ledger {result['expected']['ledger_entries']} entries, "
           f"{result['rounds']} rounds"]
    for fmt, r in result["formats"].items():
        out += [
            f"  {fmt} ({r['file_mb']} MB): reconcile ÷ parse-only = {r['ratio_cpu']} CPU ({r['ratio_wall']} wall); "
            f"{r['reconcile_cpu_s_median']:.2f} s vs {r['parse_only_cpu_s_median']:.2f} s CPU; "
            f"goal <= {GOAL_RATIO}: {'MET' if r['goal_ratio_met'] else 'NOT MET'}",
            f"    memory: reconcile's own peak {r['reconcile_own_peak_traced_mb']} MB (goal <= {GOAL_MB:.0f}: "
            f"{'MET' if r['goal_memory_met'] else 'NOT MET'}); parse-only peak {r['parse_only_peak_traced_mb']} MB; "
            f"empty ledger {r['reconcile_empty_ledger_peak_traced_mb']} MB (traced)",
            f"    process RSS: parse-only peak {r['parse_only_process_maxrss_mb']} MB; the ledger's dicts "
            f"{r['ledger_rss_mb']} MB (the hub's, not counted); reconcile's growth over them "
            f"{r['reconcile_rss_growth_mb']} MB ({r['reconcile_rss_growth_all_rounds_mb']} MB over all rounds; "
            f"peak {r['process_maxrss_ledger_and_reconcile_mb']} MB)",
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--formats", default="bank_govpay,csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    formats = tuple(f for f in args.formats.split(",") if f)
    result = run(args.lines, args.rounds, formats)
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
