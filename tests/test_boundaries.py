"""The packages import only across the edges the house allows.

- a service (tasks, accounting, analytics) never imports another service, the provider
  (``auth``) included: it signs in, checks tokens and keeps its accounts replica with
  ``auth_client`` and draws its pages with ``dashboard_kit``;
- the provider may import ``auth_client`` and ``dashboard_kit``, but no other service;
- ``auth_client`` and ``dashboard_kit`` import neither the provider nor any service, and
  ``auth_client`` does not import ``dashboard_kit`` (which builds on it);
- nothing outside ``deploy`` (the tests and benchmarks aside) imports ``deploy``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "tasks", "accounting", "analytics")
FORBIDDEN = {
    "auth": {"tasks", "accounting", "analytics"},
    "tasks": {"auth", "accounting", "analytics"},
    "accounting": {"auth", "tasks", "analytics"},
    "analytics": {"auth", "tasks", "accounting"},
    "auth_client": {*SERVICES, "dashboard_kit"},
    "dashboard_kit": {*SERVICES},
    "event_schemas": {*SERVICES, "auth_client", "dashboard_kit"},
    "messaging": {*SERVICES, "auth_client", "dashboard_kit"},
    "platform_kit": {*SERVICES, "auth_client", "dashboard_kit"},
}
# Only the tests and benchmarks may drive the deployment (``deploy``) besides itself.
BELOW_DEPLOY = tuple(sorted(FORBIDDEN))


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def forbidden_imports(package: str, root: Path = ROOT,
                      forbidden_roots: set[str] | None = None) -> dict[str, set[str]]:
    """The modules each file of ``package`` imports across an edge it must not cross."""
    roots = FORBIDDEN[package] if forbidden_roots is None else forbidden_roots
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        forbidden = {module for module in imported_modules(path)
                     if module.split(".")[0] in roots}
        if forbidden:
            found[str(path.relative_to(root))] = forbidden
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_across_allowed_edges(package):
    assert forbidden_imports(package) == {}


@pytest.mark.parametrize("package", BELOW_DEPLOY)
def test_nothing_but_the_tests_and_benchmarks_imports_deploy(package):
    assert forbidden_imports(package, forbidden_roots={"deploy"}) == {}


def test_every_package_of_the_product_is_guarded():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - {"deploy", "tests", "bench"} == set(FORBIDDEN)


def test_the_check_sees_a_forbidden_import(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "web.py").write_text(
        "from auth_client.verification import CurrentUser\n"
        "from dashboard_kit.pages import DashboardPages\n"
        "from accounting.ledger import Books\n"
        "from auth.models import Account\n"
    )
    assert forbidden_imports("tasks", tmp_path) == {
        "tasks/web.py": {"accounting.ledger", "accounting.ledger.Books", "auth.models",
                         "auth.models.Account"}
    }


def test_the_check_sees_the_client_kit_import_the_provider(tmp_path):
    (tmp_path / "auth_client").mkdir()
    (tmp_path / "auth_client" / "sign_in.py").write_text("import auth.config\n")
    assert forbidden_imports("auth_client", tmp_path) == {
        "auth_client/sign_in.py": {"auth.config"}
    }
