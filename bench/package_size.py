"""Deployment package size: ours (botocore left to the Lambda runtime) beside the naive package.

Builds both with `chalice package --stage prod` from copies of the project in a temporary directory:
  ours   requirements.txt through Chalice (manylinux wheels) + requirements-vendor.txt installed
         without dependencies into vendor/ (what `make package` / `make deploy` do)
  naive  every runtime requirement through Chalice, so PynamoDB's botocore (and its own
         dependencies) are packaged too
Prints the zip size and the unzipped size of each; the goal is a zip of at most 12 MB.
Needs PyPI (Chalice downloads Lambda wheels); without it, says why and measures nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GOAL_BYTES = 12 * 1000 * 1000
RUNTIME_PROVIDED = ("botocore", "boto3", "s3transfer", "jmespath", "dateutil", "python_dateutil", "urllib3", "six")


class BuildFailed(Exception):
    pass


def _copy_project(destination: Path) -> None:
    destination.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
    for name in ("app.py", "requirements.txt", "requirements-vendor.txt"):
        shutil.copy(ROOT / name, destination / name)
    for name in ("chalicelib", ".chalice"):
        shutil.copytree(ROOT / name, destination / name, ignore=ignore)


def _run(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise BuildFailed(f"{Path(command[0]).name} {command[1]} failed: " + " | ".join(detail))


def build(project: Path, vendored: bool) -> Path:
    if vendored:
        _run([str(BIN / "pip"), "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target", "vendor",
              "-r", "requirements-vendor.txt"], project)
        shutil.rmtree(project / "vendor" / "bin", ignore_errors=True)
    else:
        requirements = (project / "requirements.txt").read_text() + (project / "requirements-vendor.txt").read_text()
        (project / "requirements.txt").write_text(requirements)
    out = project / "out"
    _run([str(BIN / "chalice"), "package", "--stage", "prod", str(out)], project)
    return out / "deployment.zip"


def sizes(package: Path) -> tuple[int, int, int]:
    """(zip bytes, unzipped bytes, unzipped bytes of what the Lambda runtime already provides)."""
    with zipfile.ZipFile(package) as archive:
        entries = archive.infolist()
    unzipped = sum(e.file_size for e in entries)
    runtime = sum(e.file_size for e in entries if e.filename.split("/")[0].split("-")[0] in RUNTIME_PROVIDED)
    return package.stat().st_size, unzipped, runtime


def imports_on_runtime_botocore(package: Path, workdir: Path) -> str:
    """Import the app from the unzipped package, isolated, with only botocore & co. beside it (as on Lambda)."""
    code, runtime = workdir / "task", workdir / "runtime"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(code)
    import botocore  # the venv's botocore stands in for the runtime's

    site = Path(botocore.__file__).parent.parent
    for name in RUNTIME_PROVIDED:
        if (site / name).is_dir():
            shutil.copytree(site / name, runtime / name)
        elif (site / f"{name}.py").exists():
            runtime.mkdir(exist_ok=True)
            shutil.copy(site / f"{name}.py", runtime / f"{name}.py")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import app, chalicelib.jobs, pynamodb, botocore; "
        "assert botocore.__file__.startswith(sys.argv[2]); print(pynamodb.__version__, botocore.__version__)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "STAGE": "prod", "ISSUER_URL": "https://auth.clipron.example",
           "KMS_KEY_ID": "alias/clipron-oauth-prod", "AWS_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(code), str(runtime)],
                            env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return "FAILED: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    pynamodb_version, botocore_version = result.stdout.split()
    return f"ok (pynamodb {pynamodb_version} on botocore {botocore_version})"


def _mb(size: int) -> str:
    return f"{size / 1e6:6.1f} MB"


def main() -> int:
    figures = {}
    with tempfile.TemporaryDirectory(prefix="package-size-") as tmp:
        for name, vendored in (("ours", True), ("naive", False)):
            project = Path(tmp) / name
            _copy_project(project)
            try:
                package = build(project, vendored)
            except (BuildFailed, subprocess.TimeoutExpired) as error:
                print(f"package size not measured ({name}): {error}")
                print("(Chalice downloads manylinux wheels from PyPI: is it reachable?)")
                return 0
            figures[name] = sizes(package)
            if vendored:
                smoke = imports_on_runtime_botocore(package, Path(tmp) / "smoke")
    print("deployment package, chalice package --stage prod (python3.12, x86_64)")
    print(f"  {'':6} {'zip':>9} {'unzipped':>9}  of which runtime-provided (botocore & co.)")
    for name, (zipped, unzipped, runtime) in figures.items():
        print(f"  {name:6} {_mb(zipped)} {_mb(unzipped)}  {_mb(runtime)}")
    ours, naive = figures["ours"][0], figures["naive"][0]
    verdict = "met" if ours <= GOAL_BYTES else "MISSED"
    print(f"  ours is {ours / naive:.0%} of naive; goal zip <= {_mb(GOAL_BYTES).strip()}: {verdict}")
    print("  Lambda limits: 50 MB zipped (direct upload), 250 MB unzipped")
    print(f"  ours imports with only the runtime's boto libraries beside it: {smoke}")
    return 0 if smoke.startswith("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
