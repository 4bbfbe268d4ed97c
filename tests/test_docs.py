"""The docs stay true: every security-test id the code quotes is defined in docs/SECURITY-TESTS.md, every
file docs/ARCHITECTURE.md names exists, every function its tables name is defined in the file beside it,
and every link between README.md and docs/ points at a file and heading that exist."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TEST_ID = re.compile(r"\b[A-Z]{1,2}-\d{2}\b")
CATALOGUE_ROW = re.compile(r"^\| ([A-Z]{1,2}-\d{2}) \| (.+?) \| (.+?) \|$", re.MULTILINE)
REPO_PATH = re.compile(r"(?<![\w/.-])(?:app\.py|(?:chalicelib|tests|infra|bench|examples|docs)/[\w./-]*)")
BACKTICKED = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _code_files() -> list[Path]:
    files = (p for top in ("chalicelib", "tests") for p in sorted((ROOT / top).rglob("*")))
    return [p for p in files if p.suffix in {".py", ".html"}]


def _defined_ids() -> dict[str, str]:
    return {m.group(1): m.group(3) for m in CATALOGUE_ROW.finditer((DOCS / "SECURITY-TESTS.md").read_text())}


def test_every_test_id_quoted_in_the_code_is_defined():
    defined = _defined_ids()
    undefined = sorted(
        f"{path.relative_to(ROOT)}: {test_id}"
        for path in _code_files()
        for test_id in set(TEST_ID.findall(path.read_text(encoding="utf-8")))
        if test_id not in defined
    )
    assert not undefined, "define these ids in docs/SECURITY-TESTS.md or drop them:\n" + "\n".join(undefined)


def test_the_catalogue_names_only_test_files_that_exist():
    named = {f for cell in _defined_ids().values() for f in BACKTICKED.findall(cell)}
    assert named, "the catalogue names no test file"
    assert sorted(f for f in named if not (ROOT / f).is_file()) == []


def test_every_path_in_the_architecture_page_exists():
    text = (DOCS / "ARCHITECTURE.md").read_text()
    paths = {p.rstrip(".,:;") for p in REPO_PATH.findall(text)}
    assert len(paths) > 40
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


@cache
def _definitions(path: str) -> dict[str, set[str]]:
    """Top-level names of a module (key "") and the members of each class (key: the class name)."""
    tree = ast.parse((ROOT / path).read_text())
    found: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        found[""].update(_names(node))
        if isinstance(node, ast.ClassDef):
            found[node.name] = {name for member in node.body for name in _names(member)}
    return found


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _implementations() -> list[tuple[str, str]]:
    """(path, name) for every name the tables' "implemented in" column puts after a Python file."""
    pairs = []
    for line in (DOCS / "ARCHITECTURE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != 4 or cells[2] in {"implemented in", "---"}:
            continue
        for part in cells[2].split(";"):
            tokens = BACKTICKED.findall(part)
            if tokens and tokens[0].endswith(".py"):
                pairs += [(tokens[0], name) for name in tokens[1:]]
    return pairs


def test_every_function_in_the_spec_tables_is_defined_where_the_table_says():
    pairs = _implementations()
    assert len(pairs) > 60
    missing = []
    for path, name in pairs:
        owner, _, member = name.rpartition(".")
        definitions = _definitions(path)
        if owner and member not in definitions.get(owner, set()) or not owner and name not in definitions[""]:
            missing.append(f"{path} {name}")
    assert missing == [], "each `name` after a `file.py` in the \"implemented in\" column must be defined there"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.MULTILINE)}


def test_links_between_the_readme_and_the_docs_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file) if file else page
            if not resolved.exists() or anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_readme_stays_the_short_newcomers_page():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert len(readme.splitlines()) <= 200


def test_the_state_table_lists_every_item_kind_the_store_writes():
    store = (ROOT / "chalicelib" / "store" / "dynamo.py").read_text()
    written = set(re.findall(r'(?:_item\(|kind=|kind\.set\()"([a-z-]+)"', store))
    text = (DOCS / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"^\| `([a-z-]+)` \| `", text, re.MULTILINE))
    assert len(written) > 10
    assert sorted(written - listed) == []
