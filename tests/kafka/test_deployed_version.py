"""The deployment files run the Apache Kafka the tests run (deploy/kafka/pom.xml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy.kafka import kafka_version

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_and_kubernetes_run_the_tested_kafka_version():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "kafka.yaml").read_text()))
    [statefulset] = [d for d in documents if d["kind"] == "StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"apache/kafka:{kafka_version()}"


def test_kubernetes_runs_three_brokers_with_replication_factor_three():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "kafka.yaml").read_text()))
    [statefulset] = [d for d in documents if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["replicas"] == 3
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]
