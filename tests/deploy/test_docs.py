"""The operations docs stay true: every ``ates`` command in the runbook (and the Kubernetes
README) is accepted by the command line, the paths they cite exist, and the architecture's
topic table matches the event catalog."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deploy.serve import service_ports
from platform_kit.settings import LOGICAL_TOPICS
from tests.deploy.test_manifests import check_ates_command, defined_metric_names

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
K8S_README = ROOT / "deploy" / "k8s" / "README.md"
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def code_blocks(markdown: str, languages: tuple[str, ...]) -> list[str]:
    """The bodies of fenced code blocks in one of ``languages``."""
    blocks = []
    for match in re.finditer(r"^([ \t]*)```(\w*)\n(.*?)^\1```", markdown, re.S | re.M):
        if match.group(2) in languages:
            indent = match.group(1)
            body = match.group(3)
            blocks.append("\n".join(line.removeprefix(indent) for line in body.splitlines()))
    return blocks


def ates_commands(markdown: str) -> list[list[str]]:
    """The arguments of every ``ates`` command in the shell blocks: run as is, in a compose
    container (``... exec <service> ates ...``) or in a pod (``... -- ates ...``)."""
    commands = []
    for block in code_blocks(markdown, ("sh", "bash", "shell", "console")):
        for line in block.replace("\\\n", " ").splitlines():  # continued lines joined
            line = line.strip().removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word != "ates":
                    continue
                runs_it = (
                    i == 0
                    or words[i - 1] == "--"
                    or (i >= 2 and words[i - 2] == "exec" and words[0] == "docker")
                )
                if runs_it:
                    args = []
                    for arg in words[i + 1:]:
                        if arg in SHELL_OPERATORS:
                            break
                        args.append(arg)
                    commands.append(args)
                    break
    return commands


def accepted(args: list[str]) -> click.Context:
    """Parse like the console script; ``--help`` is the one option that is not parsed
    further (it would exit), so it is checked to be last and dropped."""
    if args and args[-1] == "--help":
        args = args[:-1]
    # A command that prompts (``ates token`` asks for the password) gets an answer.
    with CliRunner().isolation(input="password\n"):
        return check_ates_command(args)


RUNBOOK_COMMANDS = ates_commands(RUNBOOK.read_text())


def test_the_runbook_shows_the_commands_of_every_operation():
    shown = {" ".join(args[:2]) for args in RUNBOOK_COMMANDS}
    for operation in ("dlq list", "dlq redrive", "analytics rebuild", "accounting close-day",
                      "auth rotate-key", "auth prune-keys", "schemas lock", "schemas check",
                      "migrate", "migrate accounting"):
        assert operation in shown, f"the runbook lost `ates {operation}`"


@pytest.mark.parametrize("args", RUNBOOK_COMMANDS, ids=lambda args: " ".join(args))
def test_every_runbook_command_is_accepted_by_the_cli(args):
    try:
        accepted(args)
    except click.UsageError as error:
        pytest.fail(f"`ates {' '.join(args)}` is refused: {error}")


def test_every_command_of_the_kubernetes_readme_is_accepted_by_the_cli():
    commands = ates_commands(K8S_README.read_text())
    assert commands
    for args in commands:
        accepted(args)


def test_the_command_check_catches_renamed_options_and_unknown_names():
    for wrong in (["dlq", "redrive", "tasks-lifecycle", "--consumer-name", "accounting"],
                  ["accounting", "close-day", "--day", "2026-11-21"],
                  ["analytics", "rebuld"],
                  ["serve", "tasks", "--role", "workers", "--only", "mailer"],
                  ["migrate", "billing"]):
        with pytest.raises((click.UsageError, AssertionError)):
            accepted(wrong)
    with pytest.raises(AssertionError):
        accepted(["dlq", "list", "task-lifecycle"])


def test_command_extraction_reads_every_way_the_docs_run_ates():
    markdown = (
        "```sh\n"
        "ates dlq list tasks-stream | jq .\n"
        "docker compose -f deploy/docker-compose.yml exec tasks-web ates migrate tasks\n"
        "kubectl -n ates exec deploy/tasks-web -- ates schemas check\n"
        "kubectl -n ates get pods\n"
        "```\n"
        "```python\nates = 1\n```\n"
    )
    assert ates_commands(markdown) == [["dlq", "list", "tasks-stream"], ["migrate", "tasks"],
                                       ["schemas", "check"]]


def test_paths_the_docs_cite_exist():
    cited = set()
    for doc in (RUNBOOK, ARCHITECTURE, K8S_README):
        text = doc.read_text()
        cited |= set(re.findall(r"`((?:event_schemas|deploy|docs|messaging|platform_kit|tasks|"
                                r"accounting|analytics|auth)/[\w./-]+\.(?:py|json|lock|md|yml|yaml))`",
                                text))
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (doc.parent / link).resolve().exists(), f"{doc.name}: broken link {link}"
    assert "event_schemas/upcasting.py" in cited
    for path in cited:
        assert (ROOT / path).exists(), f"docs cite {path}, which does not exist"


def test_runbook_anchor_links_point_at_headings():
    for doc in (RUNBOOK, ARCHITECTURE):
        text = doc.read_text()
        for target, anchor in re.findall(r"\]\(([^)#]*)#([^)]+)\)", text):
            linked = (doc.parent / target) if target else doc
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                     for h in headings}
            assert anchor in slugs, f"{doc.name}: no heading for #{anchor}"


def test_architecture_topic_table_matches_the_event_catalog():
    catalog = json.loads((ROOT / "event_schemas" / "catalog.json").read_text())
    expected: dict[str, dict] = {}
    for event_type, entry in catalog.items():
        topic = expected.setdefault(entry["topic"], {"producers": set(), "consumers": set(),
                                                     "events": set()})
        topic["producers"].add(entry["producer"])
        topic["consumers"].update(entry["consumers"])
        topic["events"].add(event_type)
    rows = {}
    for line in ARCHITECTURE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in LOGICAL_TOPICS:
            rows[cells[0].strip("`")] = {
                "producers": {p.strip() for p in cells[2].split(",")},
                "consumers": {c.strip() for c in cells[3].split(",")},
                "events": set(re.findall(r"`([\w.]+)`", cells[4])),
            }
    assert set(rows) == set(LOGICAL_TOPICS) == set(expected)
    for topic, facts in expected.items():
        assert rows[topic] == facts, topic


def test_architecture_names_every_service_database_and_has_a_diagram():
    text = ARCHITECTURE.read_text()
    assert code_blocks(text, ("mermaid",))
    for service in service_ports():
        assert f"`ates_{service}`" in text
        assert f"{service} :{service_ports()[service]}" in text


def test_metrics_the_docs_name_are_defined_by_the_code():
    databases = {f"ates_{service}" for service in service_ports()}
    defined = defined_metric_names()
    for doc in (RUNBOOK, ARCHITECTURE, K8S_README):
        named = set(re.findall(r"`(ates_[a-z0-9_]+)`", doc.read_text())) - databases
        assert named <= defined, f"{doc.name} names unknown metrics {sorted(named - defined)}"
    assert "ates_consumer_lag" in set(re.findall(r"`(ates_[a-z0-9_]+)`", RUNBOOK.read_text()))
