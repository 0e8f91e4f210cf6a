"""``ates schemas`` commands and the generated docs/events.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from event_schemas import default_registry
from event_schemas._loader import PACKAGE_ROOT
from event_schemas.cli import schemas_cli
from event_schemas.docs import render_markdown

REPO_DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "event_schemas"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


def test_check_passes_on_the_real_tree() -> None:
    result = CliRunner().invoke(schemas_cli, ["check"])
    assert result.exit_code == 0, result.output
    schema_files = len(list(PACKAGE_ROOT.glob("*/*/*.json")))
    assert result.output.strip() == f"{schema_files} schemas OK"


def test_check_fails_on_a_changed_schema(tree: Path) -> None:
    path = tree / "tasks" / "task.assigned" / "1.json"
    schema = json.loads(path.read_text())
    schema["properties"]["reason"]["enum"].append("whim")
    path.write_text(json.dumps(schema, indent=2))
    result = CliRunner().invoke(schemas_cli, ["check", "--root", str(tree)])
    assert result.exit_code == 1
    assert "tasks/task.assigned/1.json: published schema version changed" in result.output


def test_lock_command(tree: Path) -> None:
    target = tree / "tasks" / "task.completed" / "2.json"
    schema = json.loads((tree / "tasks" / "task.completed" / "1.json").read_text())
    schema["$id"] = schema["$id"].replace("/1.json", "/2.json")
    target.write_text(json.dumps(schema, indent=2))
    runner = CliRunner()
    assert runner.invoke(schemas_cli, ["check", "--root", str(tree)]).exit_code == 1
    result = runner.invoke(schemas_cli, ["lock", "--root", str(tree)])
    assert result.exit_code == 0, result.output
    assert "locked tasks/task.completed/2" in result.output
    assert runner.invoke(schemas_cli, ["check", "--root", str(tree)]).exit_code == 0
    again = runner.invoke(schemas_cli, ["lock", "--root", str(tree)])
    assert "nothing new to lock" in again.output


def test_docs_mention_every_event_type() -> None:
    registry = default_registry()
    text = render_markdown(registry)
    for event_type in registry.types():
        assert f"### {event_type}\n" in text
        for version in registry.versions(event_type):
            assert f"#### {event_type} v{version}\n" in text
    for topic in (
        "accounts-stream",
        "accounts-lifecycle",
        "tasks-stream",
        "tasks-lifecycle",
        "accounting-lifecycle",
    ):
        assert f"`{topic}`" in text
    assert "| `jira_id` | string \\| null | required, nullable |" in text
    assert "pattern `^[A-Z][A-Z0-9]+-[0-9]+$`" in text
    assert "| `fee` | integer | required | 1000–2000 |" in text


def test_docs_command_writes_the_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "events.md"
    runner = CliRunner()
    result = runner.invoke(schemas_cli, ["docs", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text() == render_markdown(default_registry())
    assert runner.invoke(schemas_cli, ["docs", "--check", "--output", str(output)]).exit_code == 0
    output.write_text("stale")
    assert runner.invoke(schemas_cli, ["docs", "--check", "--output", str(output)]).exit_code == 1


def test_docs_default_output_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(schemas_cli, ["docs"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "docs" / "events.md").exists()


def test_committed_docs_are_up_to_date() -> None:
    assert REPO_DOCS.read_text(encoding="utf-8") == render_markdown(default_registry())
