"""The requirements split keeps botocore out of the deployment package without losing a dependency.

requirements.txt goes through Chalice (with its dependencies); requirements-vendor.txt goes into
vendor/ without them, so its dependencies must all be what the Lambda Python runtime ships.
bench/package_size.py measures the resulting package and imports it against a bare botocore.
"""

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# what the Lambda Python runtime provides beside the standard library (boto3 and its dependencies)
LAMBDA_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}


def _requirements(name: str) -> list[Requirement]:
    lines = (ROOT / name).read_text().splitlines()
    return [Requirement(line) for line in (ln.split("#")[0].strip() for ln in lines) if line]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _dependencies(name: str) -> set[str]:
    """The distribution's run-time dependencies on this interpreter (extras and other markers evaluated)."""
    found = set()
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.add(_normalise(requirement.name))
    return found


def _closure(names: set[str]) -> set[str]:
    seen: set[str] = set()
    pending = set(names)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending |= _dependencies(name)
    return seen


def test_vendored_packages_need_only_what_the_lambda_runtime_ships():
    vendored = _requirements("requirements-vendor.txt")
    assert vendored, "requirements-vendor.txt lists nothing"
    for requirement in vendored:
        assert _dependencies(requirement.name) <= LAMBDA_RUNTIME, requirement.name
        wheel = metadata.distribution(requirement.name).read_text("WHEEL") or ""
        assert "Root-Is-Purelib: true" in wheel, f"{requirement.name} is not pure Python: vendor/ cannot hold it"


def test_packaged_requirements_do_not_pull_in_botocore():
    packaged = {_normalise(r.name) for r in _requirements("requirements.txt")}
    assert not _closure(packaged) & {"botocore", "boto3"}


def test_the_venv_has_exactly_the_pinned_versions():
    for name in ("requirements.txt", "requirements-vendor.txt"):
        for requirement in _requirements(name):
            assert requirement.specifier.contains(metadata.version(requirement.name)), requirement
