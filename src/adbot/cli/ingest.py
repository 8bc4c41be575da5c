"""``adbot ingest FILE``: load hourly metrics or conversions from a CSV or Parquet file.

The file has the columns of ``POST /api/v1/metrics/hourly`` (or ``/conversions``), or is
a trace written by ``adbot simulate`` (recognised by its ``scenario``, ``step`` and
``timestamp`` columns). ``--campaign``/``--ad-group`` say where keywords named by text
live when the file does not. The whole file is one transaction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from adbot.cli._console import err, out, progress
from adbot.cli._options import check_range
from adbot.config import get_settings
from adbot.db.models import ConversionSource
from adbot.db.session import get_sessionmaker
from adbot.observability import configure_logging
from adbot.services import ingestion as service
from adbot.services.ratelimit import RedisHealth, sync_client
from adbot.services.reports import ReportCache


def ingest(
    file: Path = typer.Argument(
        ..., help="A .csv or .parquet file (or an `adbot simulate` trace)."
    ),
    account: str = typer.Option(..., "--account", "-a", help="Account slug or id."),
    kind: str = typer.Option("metrics", "--kind", "-k", help="metrics or conversions."),
    campaign: str | None = typer.Option(
        None, "--campaign", help="Campaign id or name, for rows that do not name one."
    ),
    ad_group: str | None = typer.Option(
        None, "--ad-group", help="Ad group id or name, for rows that do not name one."
    ),
    partial: bool = typer.Option(
        False, "--partial", help="Write the valid rows even when some are rejected."
    ),
    show: int = typer.Option(20, "--show", help="How many rejected rows to list (>= 0)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Check and upsert the rows of FILE into the database, with a progress bar."""
    check_range("--show", show, 0)
    if kind not in ("metrics", "conversions"):
        raise typer.BadParameter("must be metrics or conversions", param_hint="--kind")
    settings = get_settings()
    configure_logging(settings.log_level)
    batch = service.read_file(file)
    frame = _with_defaults(batch.frame, campaign=campaign, ad_group=ad_group)
    batch = service.Batch(frame, batch.source)
    try:
        with _report_cache(settings.redis.url):
            result = _run(kind, batch, account=account, partial=partial)
    except service.RowsRejected as exc:
        _print_rejections(exc.result, show)
        raise service.RowsRejected(exc.result, partial_option="--partial") from None
    if result.rejected:
        _print_rejections(result, show)
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str))
        return
    out.print(
        f"{result.kind}: {result.received:,} rows: {result.inserted:,} inserted, "
        f"{result.updated:,} updated, {result.unchanged:,} unchanged, "
        f"{result.rejected_rows:,} rejected",
        highlight=False,
        soft_wrap=True,
    )


def _run(kind: str, batch: service.Batch, *, account: str, partial: bool) -> service.IngestResult:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with progress(*columns) as bar, get_sessionmaker()() as session:
        task = bar.add_task(f"ingesting {kind}", total=len(batch.frame))
        account_id = service.account_id_for(session=session, reference=account)

        def advance(rows: int) -> None:
            bar.advance(task, rows)

        if kind == "metrics":
            return service.ingest_metrics(
                session=session,
                account_id=account_id,
                batch=batch,
                partial=partial,
                progress=advance,
            )
        return service.ingest_conversions(
            session=session,
            account_id=account_id,
            batch=batch,
            partial=partial,
            default_source=ConversionSource.IMPORT,
            progress=advance,
        )


def _with_defaults(
    frame: pd.DataFrame, *, campaign: str | None, ad_group: str | None
) -> pd.DataFrame:
    """Columns naming the campaign/ad group for every row, unless the file has its own."""
    frame = frame.copy()
    for value, id_column, name_column in (
        (campaign, "campaign_id", "campaign"),
        (ad_group, "ad_group_id", "ad_group"),
    ):
        if value is None or id_column in frame.columns or name_column in frame.columns:
            continue
        if value.strip().isdigit():
            frame[id_column] = int(value)
        else:
            frame[name_column] = value
    return frame


@contextlib.contextmanager
def _report_cache(url: str | None) -> Iterator[None]:
    """The API's report cache in this process while the batch is written: a committed batch
    drops the account's cached reports through it (``reports_changed``), so reports never
    serve figures older than this load."""
    if url is None:
        yield
        return
    client = sync_client(url)
    cache = ReportCache(client, RedisHealth(url))
    try:
        yield
    finally:
        del cache  # it stayed registered until here
        client.close()


def _print_rejections(result: service.IngestResult, show: int) -> None:
    if show == 0 or not result.rejected:
        return
    table = Table(title=f"{result.rejected_rows:,} rejected rows", title_justify="left")
    for name in ("row", "field", "reason"):
        table.add_column(name, justify="right" if name == "row" else "left")
    for rejection in result.rejected[:show]:
        table.add_row(str(rejection.row), rejection.field, rejection.reason)
    err.print(table)
    hidden = len(result.rejected) - show
    if hidden > 0:
        err.print(f"... and {hidden:,} more problems (--show N lists more)", highlight=False)
