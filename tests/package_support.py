"""`chalice package` of every stage, once per worker (the `packaged` fixture in conftest.py): the deploy,
404 and SnapStart tests read the same templates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGES = ("dev", "prod")
ROTATION_DAYS = "14"  # packaged with this KEY_ROTATION_DAYS instead of the committed 30


def package(stage: str, project: Path, out: Path) -> subprocess.CompletedProcess:
    """`chalice package` with no AWS credentials, no profile and no network (it needs a region, nothing else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    nowhere = "http://127.0.0.1:9"  # the discard port: any attempt to reach AWS or PyPI fails
    env.update(
        HTTP_PROXY=nowhere,
        HTTPS_PROXY=nowhere,
        AWS_DEFAULT_REGION="us-east-1",
        # chalice builds a botocore client (to read the region), which would look for credentials on the
        # EC2 metadata endpoint; packaging needs none
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(project / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(project / "no-aws-credentials"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    command = [str(BIN / "chalice"), "package", "--stage", stage, "--merge-template", f"infra/{stage}.json", str(out)]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=180)


def package_stages(base: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Package each stage, side by side, each from its own copy of the project: two `chalice package` runs in
    one project race to create .chalice/deployments and to write the same deployment zip. Third-party
    requirements are left out of the copies (the template does not depend on them, and so no wheel download
    is needed; bench/package_size.py builds the full package)."""
    projects = {stage: _project_copy(base / f"project-{stage}") for stage in STAGES}
    with ThreadPoolExecutor(len(STAGES)) as pool:
        finished = dict(zip(STAGES, pool.map(lambda stage: package(stage, projects[stage], base / f"out-{stage}"),
                                             STAGES)))
    for result in finished.values():
        assert result.returncode == 0, result.stderr
    return {stage: (json.loads((base / f"out-{stage}" / "sam.json").read_text()), base / f"out-{stage}")
            for stage in STAGES}


def _project_copy(project: Path) -> Path:
    """The app, its config and the merge templates, with the key-rotation cadence changed to ROTATION_DAYS."""
    project.mkdir()
    shutil.copy(ROOT / "app.py", project / "app.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
    for directory in ("chalicelib", ".chalice", "infra"):
        shutil.copytree(ROOT / directory, project / directory, ignore=ignore)
    (project / "requirements.txt").write_text("")
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["environment_variables"]["KEY_ROTATION_DAYS"] = ROTATION_DAYS  # the cadence is configurable
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    return project
