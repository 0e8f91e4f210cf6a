"""A service imports no other service's modules, except auth's client side."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "tasks", "accounting", "analytics")
AUTH_CLIENT_SIDE = {"auth.client", "auth.dashboard_ui", "auth.replica"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def foreign_imports(service: str, root: Path = ROOT) -> dict[str, set[str]]:
    found = {}
    for path in sorted((root / service).rglob("*.py")):
        foreign = {
            module
            for module in imported_modules(path)
            if module.split(".")[0] in SERVICES and module.split(".")[0] != service
            and not any(module == allowed or module.startswith(allowed + ".")
                        for allowed in AUTH_CLIENT_SIDE)
            and module != "auth"
        }
        if foreign:
            found[str(path.relative_to(root))] = foreign
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_auths_client_side_of_the_others(service):
    assert foreign_imports(service) == {}


def test_the_check_sees_a_forbidden_import(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "web.py").write_text(
        "from auth.client import CurrentUser\nfrom accounting.ledger import Books\n"
    )
    assert foreign_imports("tasks", tmp_path) == {
        "tasks/web.py": {"accounting.ledger", "accounting.ledger.Books"}
    }
