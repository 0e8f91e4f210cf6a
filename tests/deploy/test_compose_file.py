"""The compose file against the Compose Specification's JSON schema, checked by
``check-jsonschema`` with the copy of the schema it ships (``vendor.compose-spec``, from
github.com/compose-spec/compose-spec, Apache-2.0), reading the YAML as compose does
(anchors and ``<<`` merge keys resolved); then loaded by compose-go, the loader Docker
Compose v2 runs, built from ``deploy/compose_check`` with the machine's Go. No container
engine is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"


def check_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120,
    )


def test_compose_file_follows_the_compose_specification_schema():
    done = check_compose(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation done" in done.stdout


def broken_copy(tmp_path: Path, change) -> Path:
    """The compose file, its anchors and merges resolved, with ``change`` made to it."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    change(document)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_misspelt_service_key_is_caught(tmp_path):
    def misspell(document):
        document["services"]["tasks-relay"]["depend_on"] = ["migrate"]

    done = check_compose(broken_copy(tmp_path, misspell))
    assert done.returncode == 1
    assert "depend_on" in done.stdout + done.stderr


def test_an_unknown_start_condition_is_caught(tmp_path):
    def unknown_condition(document):
        document["services"]["migrate"]["depends_on"]["postgres"]["condition"] = "service_up"

    done = check_compose(broken_copy(tmp_path, unknown_condition))
    assert done.returncode == 1
    assert "service_up" in done.stdout + done.stderr


# -- loaded by compose-go, the loader of Docker Compose v2 ---------------------------------

COMPOSE_CHECK = COMPOSE_FILE.parent / "compose_check"


@pytest.fixture(scope="module")
def compose_v2(tmp_path_factory) -> Path:
    """``deploy/compose_check`` built with the machine's Go (its modules from the Go proxy,
    pinned by its go.sum)."""
    binary = tmp_path_factory.mktemp("compose") / "compose_check"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=COMPOSE_CHECK, check=True,
                   timeout=900)
    return binary


def load_with_compose_v2(binary: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), str(path)], capture_output=True, text=True,
                          timeout=120, cwd=path.parent)


def test_compose_v2_loads_the_compose_file_with_every_service(compose_v2):
    done = load_with_compose_v2(compose_v2, COMPOSE_FILE)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    started_by_default = [name for name, service in services.items() if "profiles" not in service]
    assert done.stdout.split() == sorted(started_by_default)


def test_compose_v2_refuses_a_misspelt_key_and_an_unknown_start_condition(compose_v2,
                                                                          tmp_path):
    def misspell(document):
        document["services"]["tasks-relay"]["depend_on"] = ["migrate"]

    def unknown_condition(document):
        document["services"]["migrate"]["depends_on"]["postgres"]["condition"] = "service_up"

    for change, word in ((misspell, "depend_on"), (unknown_condition, "condition")):
        broken = broken_copy(tmp_path, change)
        done = load_with_compose_v2(compose_v2, broken)
        assert done.returncode == 1, done.stdout
        assert word in done.stderr
