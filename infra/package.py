"""`make package`: the Chalice deployment zip and the deployable CloudFormation template, under build/.

    python -m infra.package [--stage dev] [--out build]

1. Chalice zips app.py, chalicelib/, the requirements and the *contents* of vendor/, nothing else.
   The hub also needs the top-level `adapters/` package and `mappings/` files, so copies of them are
   staged into vendor/ (generated, gitignored) for the duration of `chalice package`, which puts
   them at the zip root next to app.py. The copies are removed afterwards, whatever happens.
2. `chalice package --stage <stage> build/chalice` writes sam.json and deployment.zip.
3. The zip is checked: every staged file is in it byte for byte and nothing stale is (Chalice
   reuses a cached zip keyed by file contents; a stale cache is discarded and the build redone).
4. `infra.template.build_template` completes sam.json -> build/template.json; the zip is copied to
   build/deployment.zip (the template's CodeUri is ./deployment.zip).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
STAGED_DIRS = ("adapters", "mappings")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


class PackageError(RuntimeError):
    pass


def _files(directory: Path) -> dict[str, bytes]:
    """Relative posix path -> content of the files that get staged from `directory`."""
    found: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            found[rel.as_posix()] = path.read_bytes()
    return found


def expected_extra_files(root: Path = ROOT) -> dict[str, bytes]:
    """Zip path -> content of every file of adapters/ and mappings/ that must ship."""
    expected: dict[str, bytes] = {}
    for name in STAGED_DIRS:
        source = root / name
        if not source.is_dir():
            raise PackageError(f"{source} is missing: the Lambda zip needs it")
        files = _files(source)
        if not files:
            raise PackageError(f"{source} has no files: the Lambda zip needs them")
        expected.update({f"{name}/{rel}": content for rel, content in files.items()})
    return expected


@contextlib.contextmanager
def staged_vendor(root: Path = ROOT) -> Iterator[Path]:
    """Copies of adapters/ and mappings/ in vendor/ while the block runs; removed afterwards."""
    vendor = root / "vendor"
    created = not vendor.exists()
    vendor.mkdir(exist_ok=True)
    targets = [vendor / name for name in STAGED_DIRS]
    try:
        for name, target in zip(STAGED_DIRS, targets):
            if target.exists():  # left over by an interrupted build: vendor/ is generated
                shutil.rmtree(target)
            shutil.copytree(root / name, target, ignore=_IGNORE)
        yield vendor
    finally:
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)
        if created or not any(vendor.iterdir()):
            shutil.rmtree(vendor, ignore_errors=True)


def zip_problems(zip_path: Path, expected: dict[str, bytes]) -> list[str]:
    """What is wrong with the staged part of the zip (empty list: nothing)."""
    problems = []
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        for name, content in expected.items():
            if name not in names:
                problems.append(f"missing {name}")
            elif z.read(name) != content:
                problems.append(f"stale {name}")
        for name in names:
            if name.split("/", 1)[0] in STAGED_DIRS and name not in expected and not name.endswith("/"):
                problems.append(f"unexpected {name}")
    return sorted(problems)


def _chalice_package(root: Path, stage: str, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "cn-north-1")
    command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
               "--project-dir", str(root), "package", "--stage", stage, str(out_dir)]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise PackageError(f"chalice package failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    for name in ("sam.json", "deployment.zip"):
        if not (out_dir / name).is_file():
            raise PackageError(f"chalice package wrote no {out_dir / name}")


def _discard_chalice_cache(root: Path, keep_newest: bool = False) -> None:
    """Chalice keeps one cached zip per content hash and never removes any; keep at most the newest."""
    cached = sorted((root / ".chalice" / "deployments").glob("*.zip"), key=lambda p: p.stat().st_mtime)
    for path in cached[:-1] if keep_newest else cached:
        path.unlink(missing_ok=True)


def _placeholders(root: Path) -> dict[str, str]:
    """The literal ARNs app.py gives Chalice, which `build_template` replaces."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import app  # importing app needs no network and no settings (ARCHITECTURE.md)

    return {"stream_placeholder": app.EVENTS_STREAM_ARN, "operator_pool_placeholder": app.OPERATOR_POOL_ARN}


def build(stage: str = "dev", out: Path | None = None, root: Path = ROOT) -> Path:
    """Build `out`/template.json and `out`/deployment.zip; returns the template's path."""
    from infra.template import build_template

    out = (root / "build") if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    chalice_dir = out / "chalice"
    with open(out / ".package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (make package, parallel tests)
        expected = expected_extra_files(root)
        for attempt in (1, 2):
            with staged_vendor(root):
                _chalice_package(root, stage, chalice_dir)
            problems = zip_problems(chalice_dir / "deployment.zip", expected)
            if not problems:
                break
            if attempt == 2:
                raise PackageError("deployment.zip lacks staged files: " + ", ".join(problems[:20]))
            _discard_chalice_cache(root)
        _discard_chalice_cache(root, keep_newest=True)

        sam = json.loads((chalice_dir / "sam.json").read_text(encoding="utf-8"))
        template = build_template(sam, **_placeholders(root))
        template_path = out / "template.json"
        tmp = template_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
        tmp.replace(template_path)
        shutil.copyfile(chalice_dir / "deployment.zip", out / "deployment.zip")
    return template_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build build/template.json and build/deployment.zip.")
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        template_path = build(args.stage, args.out.resolve())
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    zip_path = template_path.parent / "deployment.zip"
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]
    print(f"wrote {template_path.relative_to(ROOT) if template_path.is_relative_to(ROOT) else template_path}"
          f" and {zip_path.name} ({zip_path.stat().st_size // 1024} KiB, sha256 {digest}…)"
          f" in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
