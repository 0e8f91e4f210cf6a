# Everything runs from a local virtualenv that these targets create and keep up to date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install chromium promtool wrk up test test-e2e lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

# Installs Debian packages, as root or through sudo.
apt_install = sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1)

## Browser tests drive Debian's Chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { $(call apt_install,chromium); }

## promtool checks the shipped alert rules (Debian's prometheus package).
promtool:
	@command -v promtool >/dev/null || { $(call apt_install,prometheus); }

## The benchmarks' HTTP load generator, from Debian.
wrk:
	@command -v wrk >/dev/null || { $(call apt_install,wrk); }

## Start the whole platform on embedded servers (Ctrl-C stops everything).
up: install
	$(BIN)/ates up

## Contract checks, then the whole test suite against real servers.
test: install chromium promtool
	$(BIN)/ates schemas check
	$(BIN)/ates schemas docs --check
	$(BIN)/python -m pytest

## The end-to-end suite alone (part of `make test` too): the platform as `make up` starts
## it, driven over HTTP, with faults injected (docs/reliability.md).
test-e2e: install chromium
	$(BIN)/python -m pytest tests/e2e -q -s

## Apache Kafka's jars (deploy/kafka/pom.xml), fetched once from Maven Central by Maven.
kafka:
	@command -v java >/dev/null || { echo "Apache Kafka needs Java 17 or newer: java is not on PATH"; exit 1; }
	@command -v mvn >/dev/null || { echo "Apache Kafka needs Maven: mvn is not on PATH"; exit 1; }
	mvn -q -B -f deploy/kafka/pom.xml dependency:resolve

## The suites that talk to the broker, again on a 3-node Apache Kafka cluster (KRaft,
## replication factor 3, min.insync.replicas 2): the messaging runtime and its consumer
## groups, the analytics stream, and the whole end-to-end suite with its faults.
KAFKA_SUITES := tests/messaging tests/analytics/test_stream.py tests/analytics/test_rebuild.py tests/e2e
test-kafka: install chromium kafka
	ATES_TEST_BROKER=kafka $(BIN)/python -m pytest $(KAFKA_SUITES)

## Style and strict types (mypy --strict, settings in pyproject.toml) of every package.
TYPED := platform_kit messaging event_schemas auth auth_client dashboard_kit tasks accounting analytics deploy
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(TYPED)

## Benchmarks: each figure beside a raw baseline measured in the same run.
bench: install wrk
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var *.egg-info
