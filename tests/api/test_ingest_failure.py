"""All or nothing: a failure half way through writing a batch leaves no row of it.

Two real failures, no mocks: a statement that fails on the 7th of 10 rows (a trigger
raising inside the merge into the table, after the staging COPY), and a connection
that the server drops in the middle of the batch (the backend terminates itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from api_helpers import Tenant
from ingest_helpers import (
    METRICS,
    Shop,
    build_shop,
    metric,
    metric_rows,
    one_ad_group,
    post_rows,
    utc,
)
from pandas import DataFrame
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from adbot.db.session import make_sessionmaker
from adbot.services import ingest_store
from adbot.services.ingestion import Batch, ingest_metrics

MARKER = 424_242  # impressions of the row on which the trigger fires

FAIL_ON_MARKER = f"""
CREATE FUNCTION fail_on_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.impressions = {MARKER} THEN
    RAISE EXCEPTION 'injected failure on row with % impressions', NEW.impressions;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_on_marker BEFORE INSERT OR UPDATE ON performance_metrics
  FOR EACH ROW EXECUTE FUNCTION fail_on_marker();
"""

DROP_CONNECTION_ON_MARKER = f"""
CREATE FUNCTION drop_on_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.impressions = {MARKER} THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER drop_on_marker BEFORE INSERT OR UPDATE ON performance_metrics
  FOR EACH ROW EXECUTE FUNCTION drop_on_marker();
"""


def _batch(keyword_ids: list[int], marker_at: int | None) -> list[dict[str, object]]:
    """Five hours of two keywords: updates of hours 0-1 and new hours 2-4."""
    rows = [
        metric(keyword, utc(2024, 5, 1, hour), impressions=200 + hour, clicks=20)
        for hour in range(5)
        for keyword in keyword_ids
    ]
    if marker_at is not None:
        rows[marker_at]["impressions"] = MARKER
    return rows


def test_a_statement_failing_mid_batch_writes_nothing(tenant: Tenant, db_session: Session) -> None:
    shop: Shop = build_shop(tenant)
    ids = [shop.keywords["running shoes"], shop.keywords["wool hat"]]
    seed = [metric(k, utc(2024, 5, 1, h)) for h in range(2) for k in ids]
    assert post_rows(tenant, METRICS, seed).status_code == 200
    before = metric_rows(db_session, tenant.account_id)
    db_session.execute(text(FAIL_ON_MARKER))

    response = post_rows(tenant, METRICS, _batch(ids, marker_at=6))

    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "internal_error"
    assert metric_rows(db_session, tenant.account_id) == before
    # The same batch without the marker goes through: nothing was left half-written.
    assert post_rows(tenant, METRICS, _batch(ids, marker_at=None)).json()["inserted"] == 6


def test_a_failure_mid_copy_into_an_empty_range_writes_nothing(
    tenant: Tenant, db_session: Session
) -> None:
    """A batch of new hours only is COPYed straight into the table: all or nothing too."""
    shop: Shop = build_shop(tenant)
    ids = [shop.keywords["running shoes"], shop.keywords["wool hat"]]
    db_session.execute(text(FAIL_ON_MARKER))

    response = post_rows(tenant, METRICS, _batch(ids, marker_at=6))

    assert response.status_code == 500, response.text
    assert metric_rows(db_session, tenant.account_id) == []
    assert post_rows(tenant, METRICS, _batch(ids, marker_at=None)).json()["inserted"] == 10


def test_keys_another_writer_stored_meanwhile_are_merged(
    tenant: Tenant, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct COPY looks for stored keys in the batch's key range first. When another
    writer stores keys after that look (simulated by a look that finds nothing), the COPY
    meets the primary key and the batch is merged through the staging table with
    ``INSERT ... ON CONFLICT`` instead: same counts, same contents."""
    shop: Shop = build_shop(tenant)
    ids = [shop.keywords["running shoes"], shop.keywords["wool hat"]]
    seed = [metric(k, utc(2024, 5, 1, h)) for h in range(2) for k in ids]
    assert post_rows(tenant, METRICS, seed).json()["inserted"] == 4
    real_ranges = ingest_store._key_ranges

    def blind_ranges(batch: DataFrame, key: Sequence[str]) -> dict[str, tuple[Any, Any]]:
        # Reversed bounds: BETWEEN finds nothing, as if the look came before the writer.
        return {name: (high, low) for name, (low, high) in real_ranges(batch, key).items()}

    merged_on_conflict: list[int] = []
    real_on_conflict = ingest_store._Merge.on_conflict

    def on_conflict(merge: Any, connection: Any) -> tuple[int, int]:
        merged_on_conflict.append(1)
        return real_on_conflict(merge, connection)

    monkeypatch.setattr(ingest_store, "_key_ranges", blind_ranges)
    monkeypatch.setattr(ingest_store._Merge, "on_conflict", on_conflict)

    body = post_rows(tenant, METRICS, _batch(ids, marker_at=None)).json()

    assert (body["inserted"], body["updated"], body["unchanged"]) == (6, 4, 0)
    assert merged_on_conflict == [1]
    stored = metric_rows(db_session, tenant.account_id)
    assert [(row[3], row[4], row[5], row[6]) for row in stored] == [
        (keyword, utc(2024, 5, 1, hour), 200 + hour, 20) for keyword in ids for hour in range(5)
    ]


def _keywords(session: Session) -> tuple[int, list[int]]:
    account_id, _, keywords = one_ad_group(session, "dropped", ["one", "two"])
    session.commit()
    return account_id, [keyword.id for keyword in keywords]


def _stored(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT account_id, keyword_id, hour, impressions, clicks, updated_at "
                "FROM performance_metrics ORDER BY keyword_id, hour"
            )
        )
        return [tuple(row) for row in rows]


def test_a_dropped_connection_mid_batch_writes_nothing(own_engine: Engine) -> None:
    factory = make_sessionmaker(own_engine)
    with factory() as session:
        account_id, ids = _keywords(session)
        seed = [metric(k, utc(2024, 5, 1, h)) for h in range(2) for k in ids]
        ingest_metrics(session=session, account_id=account_id, batch=Batch(DataFrame(seed), "json"))
    before = _stored(own_engine)
    assert len(before) == 4
    with own_engine.begin() as connection:
        connection.execute(text(DROP_CONNECTION_ON_MARKER))

    with factory() as session, pytest.raises(DBAPIError) as failure:
        batch = Batch(DataFrame(_batch(ids, marker_at=6)), "json")
        ingest_metrics(session=session, account_id=account_id, batch=batch)

    assert failure.value.connection_invalidated, failure.value  # the server hung up
    assert _stored(own_engine) == before
