"""Which keyword (and so which ad group and campaign) each row of a batch is about.

A row names its keyword by id (``keyword_id``) or by text (``keyword``), optionally
narrowed by ``match_type``, ``ad_group_id``/``ad_group`` (name) and
``campaign_id``/``campaign`` (name). Only the account's own keywords match: a keyword of
another account is "unknown", never "forbidden", so a batch cannot probe other tenants.
The matching runs once per distinct reference, with a few queries per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from adbot.db.models import AdGroup, Campaign, Keyword, MatchType
from adbot.services.ingest_checks import (
    Problems,
    Source,
    blank,
    int_column,
    present,
    text_column,
)
from adbot.services.keywords import normalise_text

# Reference attributes: (input column, candidate column).
_KEYWORD_ATTRS = {
    "keyword_id": "kid",
    "keyword": "text",
    "match_type": "match_type",
    "ad_group_id": "gid",
    "ad_group": "gname",
    "campaign_id": "cid",
    "campaign": "cname",
}
_CAMPAIGN_ATTRS = {"campaign_id": "cid", "campaign": "cname"}
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
_CHUNK = 5_000  # bound parameters per IN list (SQLite allows 32,766)
_MATCH_TYPES = {member.value for member in MatchType}


@dataclass(frozen=True)
class Targets:
    """Resolved ids per row (0 where the row was not resolved)."""

    keyword_id: np.ndarray
    ad_group_id: np.ndarray
    campaign_id: np.ndarray
    ok: np.ndarray


def has_keyword_reference(frame: pd.DataFrame) -> bool:
    return present(frame, "keyword_id", "keyword") is not None


def resolve_keywords(
    session: Session,
    account_id: int,
    frame: pd.DataFrame,
    problems: Problems,
    source: Source,
    *,
    rows: np.ndarray | None = None,
) -> Targets:
    """Resolve every row (or the rows in the ``rows`` mask) to one keyword of the account."""
    refs = _references(frame, problems, source, _KEYWORD_ATTRS)
    wanted = np.ones(len(frame), dtype=bool) if rows is None else rows
    usable = wanted & ~problems.bad(*_KEYWORD_ATTRS)
    by_id = _given(refs["kid"]) & usable
    by_text = _given(refs["text"]) & usable & ~by_id
    neither = usable & ~by_id & ~by_text
    problems.add(neither, "keyword_id", "no keyword_id or keyword given")
    candidates = _keyword_candidates(
        session,
        account_id,
        ids=pd.unique(refs["kid"][by_id]),
        texts=pd.unique(refs["text"][by_text]),
    )
    targets = _empty_targets(len(frame))
    _match(refs, by_id, "kid", candidates, "keyword_id", problems, targets)
    _match(refs, by_text, "text", candidates, "keyword", problems, targets)
    return targets


def resolve_campaigns(
    session: Session,
    account_id: int,
    frame: pd.DataFrame,
    problems: Problems,
    source: Source,
    rows: np.ndarray,
) -> Targets:
    """Resolve the rows in the ``rows`` mask to one campaign of the account."""
    refs = _references(frame, problems, source, _CAMPAIGN_ATTRS)
    usable = rows & ~problems.bad(*_CAMPAIGN_ATTRS)
    by_id = _given(refs["cid"]) & usable
    by_name = _given(refs["cname"]) & usable & ~by_id
    neither = usable & ~by_id & ~by_name
    problems.add(neither, "campaign_id", "no keyword or campaign given")
    stmt = select(Campaign.id.label("cid"), Campaign.name.label("cname")).where(
        Campaign.account_id == account_id
    )
    candidates = pd.concat(
        [
            _fetch(session, stmt, Campaign.id, [int(i) for i in pd.unique(refs["cid"][by_id])]),
            _fetch(session, stmt, Campaign.name, list(pd.unique(refs["cname"][by_name]))),
        ],
        ignore_index=True,
    ).drop_duplicates("cid")
    candidates["kid"] = 0
    candidates["gid"] = 0
    targets = _empty_targets(len(frame))
    _match(refs, by_id, "cid", candidates, "campaign_id", problems, targets)
    _match(refs, by_name, "cname", candidates, "campaign", problems, targets)
    return targets


def _empty_targets(size: int) -> Targets:
    return Targets(
        keyword_id=np.zeros(size, dtype=np.int64),
        ad_group_id=np.zeros(size, dtype=np.int64),
        campaign_id=np.zeros(size, dtype=np.int64),
        ok=np.zeros(size, dtype=bool),
    )


# Per attribute, one array over the batch's rows: ids as int64 (0: not given) and texts as
# objects (None: not given). Numeric arrays keep the matching vectorised.
References = dict[str, np.ndarray]


def _given(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.asarray(pd.notna(values), dtype=bool)
    return np.asarray(values != 0)


def _references(
    frame: pd.DataFrame, problems: Problems, source: Source, attrs: dict[str, str]
) -> References:
    """The reference columns of the batch, typed, with absent ones as not given."""
    size = len(frame)
    refs: References = {}
    for column, attr in attrs.items():
        is_id = column.endswith("_id")
        if column not in frame.columns:
            refs[attr] = np.zeros(size, np.int64) if is_id else np.full(size, None, object)
            continue
        given = ~blank(frame[column])
        local = Problems(problems.size)
        if is_id:
            ids = int_column(frame, column, local, source, optional=True)
            out_of_range = (ids <= 0) | (ids > MAX_ID)
            local.add(given & ~local.bad() & out_of_range, column, f"must be an id, 1 to {MAX_ID}")
            refs[attr] = np.where(given & ~local.bad(), ids, 0)
        else:
            texts = text_column(frame, column, local, max_length=255, optional=True)
            if column == "keyword":  # stored normalised (see services.keywords)
                texts = _per_distinct(texts, _normal)
            texts[~(given & ~local.bad())] = None
            refs[attr] = texts
        problems.extend(local)
    if "match_type" in refs and "match_type" in frame.columns:
        match_types = refs["match_type"]
        known = pd.Series(match_types).isin(_MATCH_TYPES).to_numpy() | ~_given(match_types)
        problems.add(~known, "match_type", f"must be one of {', '.join(sorted(_MATCH_TYPES))}")
        match_types[~known] = None
    return refs


def _per_distinct(values: np.ndarray, function: Any) -> np.ndarray:
    """``function`` applied once per distinct non-null value of an object array."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.asarray([*(function(value) for value in uniques), None], dtype=object)
    return mapped[codes]


def _normal(text: str | None) -> str | None:
    return normalise_text(text) if text else None


def _keyword_candidates(
    session: Session, account_id: int, *, ids: Iterable[Any], texts: Iterable[Any]
) -> pd.DataFrame:
    stmt = (
        select(
            Keyword.id.label("kid"),
            Keyword.text.label("text"),
            Keyword.match_type.label("match_type"),
            AdGroup.id.label("gid"),
            AdGroup.name.label("gname"),
            Campaign.id.label("cid"),
            Campaign.name.label("cname"),
        )
        .join(AdGroup, AdGroup.id == Keyword.ad_group_id)
        .join(Campaign, Campaign.id == AdGroup.campaign_id)
        .where(Campaign.account_id == account_id)
    )
    found = pd.concat(
        [
            _fetch(session, stmt, Keyword.id, [int(i) for i in ids]),
            _fetch(session, stmt, Keyword.text, list(texts)),
        ],
        ignore_index=True,
    )
    found = found.drop_duplicates("kid")
    found["match_type"] = found["match_type"].map(lambda m: getattr(m, "value", m))
    return found


def _fetch(session: Session, stmt: Select[Any], column: Any, values: Sequence[Any]) -> pd.DataFrame:
    names = list(stmt.selected_columns.keys())
    parts = [
        pd.DataFrame(
            session.execute(stmt.where(column.in_(values[start : start + _CHUNK]))).all(),
            columns=names,
        )
        for start in range(0, len(values), _CHUNK)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)


def _combinations(columns: list[np.ndarray]) -> np.ndarray:
    """One code per row for its combination of values (0, 1, ... in order of first
    appearance), by factorizing column after column: integer work only, no row tuples.
    """
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for values in columns:
        column_codes, uniques = pd.factorize(values, use_na_sentinel=True)
        codes = codes * (len(uniques) + 1) + (column_codes + 1)
        codes = pd.factorize(codes)[0]
    return codes


def _match(
    refs: References,
    rows: np.ndarray,
    on: str,
    candidates: pd.DataFrame,
    field: str,
    problems: Problems,
    targets: Targets,
) -> None:
    """Match the distinct references of ``rows`` on column ``on``, then check the other
    given attributes; exactly one candidate must remain per reference.
    """
    if not rows.any():
        return
    row_index = np.flatnonzero(rows)
    attrs = [attr for attr, values in refs.items() if (_given(values) & rows).any()]
    selected = {attr: refs[attr][row_index] for attr in attrs}
    codes = _combinations([selected[attr] for attr in attrs])
    # Codes count up in order of first appearance: code c first appears where the running
    # maximum reaches c.
    running = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]])
    combos = pd.DataFrame(
        {attr: _as_reference(selected[attr][first]) for attr in attrs}, dtype=object
    )
    combos["_code"] = np.arange(len(first))
    pairs = combos.merge(candidates.astype(object), on=on, how="inner", suffixes=("", "_candidate"))
    keep = np.ones(len(pairs), dtype=bool)
    for attr in attrs:
        if attr == on:
            continue
        given = pairs[attr].notna().to_numpy()
        equal = (pairs[attr].astype(str) == pairs[f"{attr}_candidate"].astype(str)).to_numpy()
        keep &= ~given | equal
    pairs = pairs[keep]
    count = pairs.groupby("_code").size().reindex(range(len(first)), fill_value=0)
    per_row = count.to_numpy()[codes]
    _report(row_index, per_row, on, attrs, field, problems)
    unique = pairs[pairs["_code"].map(count) == 1].set_index("_code")
    hit = per_row == 1
    chosen = row_index[hit]
    for column, out in (
        ("kid", targets.keyword_id),
        ("gid", targets.ad_group_id),
        ("cid", targets.campaign_id),
    ):
        source = f"{column}_candidate" if column in attrs and column != on else column
        per_code = np.zeros(len(first), dtype=np.int64)
        per_code[unique.index.to_numpy(np.int64)] = unique[source].to_numpy(np.int64)
        out[chosen] = per_code[codes[hit]]
    targets.ok[chosen] = True


def _as_reference(values: np.ndarray) -> list[Any]:
    """Distinct references as Python values for the candidate merge (None: not given)."""
    if values.dtype == object:
        return list(values)
    return [int(value) if value else None for value in values]


def _report(
    row_index: np.ndarray,
    per_row: np.ndarray,
    on: str,
    attrs: list[str],
    field: str,
    problems: Problems,
) -> None:
    narrowed = [attr for attr in attrs if attr != on]
    what = "keyword" if on in {"kid", "text"} else "campaign"
    mask = np.zeros(problems.size, dtype=bool)
    mask[row_index[per_row == 0]] = True
    if narrowed:
        given = ", ".join(_LABELS[attr] for attr in narrowed)
        problems.add(mask, field, f"unknown {what} (or not matching the given {given})")
    else:
        problems.add(mask, field, f"unknown {what}")
    many = np.zeros(problems.size, dtype=bool)
    many[row_index[per_row > 1]] = True
    # A keyword text is narrowed by its match type, ad group or campaign; a campaign name
    # (names are not unique) only by its id.
    narrow = "add match_type, ad_group or campaign" if what == "keyword" else "give campaign_id"
    problems.add(many, field, f"ambiguous: several {what}s match; {narrow}")


_LABELS = {
    "kid": "keyword_id",
    "text": "keyword",
    "match_type": "match_type",
    "gid": "ad group",
    "gname": "ad group",
    "cid": "campaign",
    "cname": "campaign",
}
