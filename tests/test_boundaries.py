"""The packages import only across the edges the house allows.

- a service (tasks, accounting, analytics) never imports another service, the provider
  (``auth``) included: it signs in, checks tokens and keeps its accounts replica with
  ``auth_client`` and draws its pages with ``dashboard_kit``;
- the provider may import ``auth_client`` and ``dashboard_kit``, but no other service;
- ``auth_client`` and ``dashboard_kit`` import neither the provider nor any service, and
  ``auth_client`` does not import ``dashboard_kit`` (which builds on it);
- nothing outside ``deploy`` (the tests and benchmarks aside) imports ``deploy``;
- ``platform_kit`` builds on nothing of ours; ``messaging`` builds on it and on
  ``event_schemas``;
- the platform (``messaging``, ``platform_kit``, ``deploy``) never names a service, in an
  import or in a module name handed to importlib: it runs services through the specs they
  publish (``platform_kit.spec``).
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
    "platform_kit": {*SERVICES, "auth_client", "dashboard_kit", "messaging", "event_schemas"},
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


# -- the platform runs services through their specs and never names one ----------------

PLATFORM_PACKAGES = ("messaging", "platform_kit", "deploy")
IMPORTERS = ("import_module", "find_spec", "__import__")


def _platform_files() -> list[Path]:
    return sorted(path for package in PLATFORM_PACKAGES
                  for path in (ROOT / package).rglob("*.py"))


def _names_service(module: str) -> bool:
    return module.split(".")[0] in SERVICES


def _service_names_in(path: Path) -> list[str]:
    """``line: what`` for each import of a service package and each module name given to
    importlib that names one or is built at run time (``f"{service}.app"``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names
                      if _names_service(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _names_service(node.module):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in IMPORTERS:
                continue
            module = node.args[0]
            if isinstance(module, ast.JoinedStr):
                found.append(f"{node.lineno}: {name}({ast.unparse(module)})")
            elif (isinstance(module, ast.Constant) and isinstance(module.value, str)
                  and _names_service(module.value)):
                found.append(f"{node.lineno}: {name}({module.value!r})")
    return found


def test_the_platform_packages_are_searched():
    files = {path.relative_to(ROOT).parts[0] for path in _platform_files()}
    assert files == set(PLATFORM_PACKAGES)


@pytest.mark.parametrize("path", _platform_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_platform_module_names_a_service(path):
    assert _service_names_in(path) == []


def test_the_check_sees_imports_and_importlib_names(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import importlib\n"
        "import tasks.app\n"
        "from accounting.consumers import CONSUMER_NAME\n"
        "importlib.import_module('analytics.cli')\n"
        "importlib.util.find_spec(f'{name}.app')\n"
        "importlib.import_module(spec.migrations)\n"
        "from auth_client.settings import auth_url\n"
    )
    assert _service_names_in(sample) == [
        "2: import tasks.app",
        "3: from accounting.consumers import ...",
        "4: import_module('analytics.cli')",
        "5: find_spec(f'{name}.app')",
    ]
