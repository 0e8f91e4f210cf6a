"""bench.messaging: the pipeline on each broker, beside raw baselines of the same run."""

from __future__ import annotations

from bench.common import kafka_broker, postgres_server
from bench.messaging import broker_results, brokers, make_events
from deploy.kafka import kafka_version


def test_the_pipeline_is_measured_on_tansu_and_on_the_pinned_apache_kafka():
    assert list(brokers()) == ["Tansu", f"Apache Kafka {kafka_version()}"]


def test_a_broker_reports_its_pipeline_beside_raw_psycopg_and_raw_produce_consume():
    events = make_events(300)
    with postgres_server() as pg, kafka_broker() as broker:
        results = broker_results(pg, broker.bootstrap, "Tansu", events, raw_db=1000.0)
    assert [(r.name, r.baseline_name) for r in results] == [
        ("pipeline on Tansu (events/s)", "psycopg executemany (rows/s)"),
        ("pipeline on Tansu (events/s)", "raw produce+consume, Tansu"),
    ]
    # Measured only once every event went through outbox, relay, broker and inbox.
    assert all(r.value > 0 and r.baseline > 0 for r in results)
    assert results[0].baseline == 1000.0
