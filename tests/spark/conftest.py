"""One Spark session for every Spark test: starting one costs tens of seconds."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    pytest.importorskip("pyspark")
    from ipm_outcomes.spark_engine import spark_session

    session = spark_session("local[2]", app_name="ipm-outcomes-tests", warehouse=tmp_path_factory.mktemp("warehouse"))
    yield session
    session.stop()
