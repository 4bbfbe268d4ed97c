"""Error descriptions are fixed strings (issue 11; DESIGN.md "Rules learned"): no error raised or page shown
by chalicelib builds its text from a value the request could have chosen.

The behavioural tests (tests/test_pages_hardening.py) send a marker and look for it in answers; this one
reads the code, so a new error path (OIDC, MCP, …) that formats input into a description fails here
before any request reaches it. A formatted value is allowed only when it is an UPPER_CASE module
constant (a limit, a realm).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "chalicelib"
ROOT_ERRORS = {"OAuthError", "UntrustedRequest", "InvalidInput"}
# helpers whose text argument reaches a client or a page, and an error class's own super().__init__
PAGE_HELPERS = {"error_page", "method_not_allowed", "_login_page", "_unauthorised", "_invalid_client", "__init__"}


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(ROOT.rglob("*.py"))}


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Every class deriving (directly or not) from an error type whose text is shown to clients or users."""
    names = set(ROOT_ERRORS)
    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                    if bases & names:
                        names.add(node.name)
                        changed = True
    return names


def _called(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def _built_from_variables(node: ast.AST) -> bool:
    """An f-string interpolating anything but an UPPER_CASE name, `%` formatting, `.format()` or `+` of text."""
    for part in ast.walk(node):
        if isinstance(part, ast.FormattedValue):
            if not (isinstance(part.value, ast.Name) and part.value.id.isupper()):
                return True
        if isinstance(part, ast.BinOp) and isinstance(part.op, (ast.Mod, ast.Add)):
            return True
        if isinstance(part, ast.Call) and getattr(part.func, "attr", "") in ("format", "join"):
            return True
    return False


def test_no_error_description_is_built_from_a_variable():
    trees = _trees()
    errors = _error_classes(trees)
    offenders = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _called(node) not in errors | PAGE_HELPERS:
                continue
            for argument in [*node.args, *(k.value for k in node.keywords if k.arg != "headers")]:
                if isinstance(argument, (ast.JoinedStr, ast.BinOp, ast.Call)) and _built_from_variables(argument):
                    offenders.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {_called(node)}")
    assert offenders == []


def test_the_check_sees_the_shapes_it_forbids():
    source = (
        "class Oops(OAuthError): pass\n"
        "raise Oops(f'the scope {scope} is unknown')\n"
        "raise InvalidInput('field ' + name)\n"
        "raise UntrustedRequest('{}'.format(value))\n"
        "error_page('Title', f'the parameter {name}')\n"
        "raise Oops(f'at most {MAX_STATE} characters')\n"
    )
    tree = ast.parse(source)
    errors = _error_classes({Path("x.py"): tree})
    flagged = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
               and _called(node) in errors | PAGE_HELPERS
               and any(isinstance(a, (ast.JoinedStr, ast.BinOp, ast.Call)) and _built_from_variables(a)
                       for a in node.args)]
    assert sorted(flagged) == [2, 3, 4, 5]
