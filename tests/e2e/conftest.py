"""One platform for the end-to-end tests, started once: see ``tests/e2e/platform.py``."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.platform import Api, Driver, Model, start_platform

# The broker faults of the 3-node cluster run only there (make test-kafka); the memory-only
# broker's restart, which loses every topic, only on it.
collect_ignore = (["test_broker_forgets.py"] if os.environ.get("ATES_TEST_BROKER") == "kafka"
                  else ["test_kafka_faults.py"])


@pytest.fixture(scope="session")
def platform():
    platform, var_dir = start_platform()
    try:
        yield platform
    finally:
        platform.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def api(platform):
    api = Api(platform)
    yield api
    api.http.close()


@pytest.fixture(scope="session")
def model():
    """Every request of every e2e test that succeeded, in order: the tests build on each
    other's data, and each checks the whole platform against all of it."""
    return Model()


@pytest.fixture(scope="session")
def driver(api, model, platform):
    driver = Driver(api, model, platform)
    driver.load_demo_accounts()
    return driver
