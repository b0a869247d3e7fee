"""Cold `import app` ÷ cold `import boto3` + three clients, each in a fresh interpreter, alternated.

Each run is a new `python -c` process started from the repository root whose environment has no AWS
setting except AWS_DEFAULT_REGION=cn-north-1 (and no HUB_* setting); the process times its own work
with perf_counter and prints the seconds. The two kinds alternate; medians are compared.

Extra lines, NOT the goal's figure: what a fresh process pays up to its first answer (import app +
first GET /v1/catalog through chalice.test.Client; import app + the first inbound validation and the
DynamoDB client the write would use).

    .venv/bin/python -m bench.cold_import [--runs 15] [--extra-runs 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import REGION, REPO, median, publish_result

NAME = "cold_import"
GOAL_RATIO = 1.15

_TIMED = "import time\nt0 = time.perf_counter()\n{body}\nprint(repr(time.perf_counter() - t0))\n"

PROGRAMS = {
    "import_app": "import app",
    "boto3_three_clients": (
        "import boto3\n"
        "session = boto3.session.Session()\n"
        "clients = [session.client(name, region_name='cn-north-1') for name in ('dynamodb', 'sqs', 's3')]"),
    # Extras (not the goal): the first answer of a fresh process.
    "import_app_first_catalog": (
        "import app\n"
        "from chalice.test import Client\n"
        "with Client(app.app) as client:\n"
        "    response = client.http.get('/v1/catalog')\n"
        "assert response.status_code == 200, response.status_code"),
    "import_app_first_validation_and_client": (
        "import app\n"
        "from chalicelib import aws, ingest, mapping, models\n"
        "body = {body!r}\n"
        "envelope = ingest.parse_envelope(body)\n"
        "canonical = mapping.load_mapping('canonical').to_canonical(envelope.type, envelope.data)\n"
        "models.validate_data(envelope.type, canonical).model_dump(mode='json', exclude_none=True)\n"
        "aws.client('dynamodb')"),
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env["AWS_DEFAULT_REGION"] = REGION
    return env


def _sample_body() -> str:
    from bench.common import SZ_UNIT, event_body, example_data

    return event_body("application.submitted",
                      example_data("application.submitted", unit_code=SZ_UNIT, case_id="SZ-COLD-1")).decode()


def time_once(program: str) -> tuple[float, float]:
    """(seconds the child measured for its own work, wall seconds from spawn to exit)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1]), wall


def alternate(names: list[str], runs: int) -> dict[str, dict[str, list[float]]]:
    out = {name: {"inner": [], "wall": []} for name in names}
    for i in range(runs):
        # Alternate, and flip the order every run so neither kind always goes first.
        order = names if i % 2 == 0 else list(reversed(names))
        for name in order:
            body = PROGRAMS[name].replace("{body!r}", repr(_sample_body()))
            inner, wall = time_once(_TIMED.format(body=body))
            out[name]["inner"].append(inner)
            out[name]["wall"].append(wall)
    return out


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def run(runs: int = 15, extra_runs: int = 5) -> dict[str, Any]:
    # One untimed run of each first, so that neither side pays for writing .pyc files.
    for name in PROGRAMS:
        time_once(_TIMED.format(body=PROGRAMS[name].replace("{body!r}", repr(_sample_body()))))
    main_runs = alternate(["import_app", "boto3_three_clients"], runs)
    extra = alternate(["import_app_first_catalog", "import_app_first_validation_and_client"], extra_runs)
    app_med = median(main_runs["import_app"]["inner"])
    base_med = median(main_runs["boto3_three_clients"]["inner"])
    result: dict[str, Any] = {
        "what": "fresh-process `import app` ÷ fresh-process `import boto3` + DynamoDB, SQS and S3 clients",
        "environment_of_children": "PATH, HOME (and LANG if set) + AWS_DEFAULT_REGION=cn-north-1 only",
        "runs_each": runs,
        "import_app_median_ms": _ms(app_med),
        "boto3_three_clients_median_ms": _ms(base_med),
        "ratio_of_medians": round(app_med / base_med, 3),
        "goal": {"ratio_max": GOAL_RATIO, "met": app_med / base_med <= GOAL_RATIO},
        "process_wall_median_ms": {k: _ms(median(v["wall"])) for k, v in main_runs.items()},
        "samples_ms": {k: [_ms(x) for x in v["inner"]] for k, v in main_runs.items()},
        "extra_not_the_goal": {
            "note": "first answer of a fresh process; not the goal's figure",
            "runs_each": extra_runs,
            **{f"{k}_median_ms": _ms(median(v["inner"])) for k, v in extra.items()},
            "process_wall_median_ms": {k: _ms(median(v["wall"])) for k, v in extra.items()},
        },
    }
    return result


def summary(result: dict[str, Any]) -> list[str]:
    extra = result["extra_not_the_goal"]
    return [
        f"cold_import: import app {result['import_app_median_ms']} ms ÷ import boto3 + 3 clients "
        f"{result['boto3_three_clients_median_ms']} ms = {result['ratio_of_medians']} "
        f"(medians of {result['runs_each']}; goal <= {GOAL_RATIO}: {'MET' if result['goal']['met'] else 'NOT MET'})",
        f"  not the goal's figure — fresh process to first answer: import app + first GET /v1/catalog "
        f"{extra['import_app_first_catalog_median_ms']} ms; import app + first inbound validation + DynamoDB client "
        f"{extra['import_app_first_validation_and_client_median_ms']} ms (medians of {extra['runs_each']})",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--extra-runs", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(min(max(args.runs, 1), 100), min(max(args.extra_runs, 0), 50))
    return publish_result(NAME, result, summary)


if __name__ == "__main__":
    raise SystemExit(main())
