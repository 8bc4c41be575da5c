"""A small world with rows in every table, for the schema tests on either backend.

The world is built through the ORM (so it exercises the models) and is shaped for the
generic constraint tests: every nullable foreign key is set in some row, and the first
two rows of each table with a unique key are siblings under one parent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adbot.db.models import (
    Account,
    Ad,
    AdGroup,
    Agent,
    AgentConfig,
    AgentKind,
    Anomaly,
    AnomalyStatus,
    ApiKey,
    BanditArm,
    BidChange,
    BidOutcome,
    BidSource,
    Campaign,
    Conversion,
    ConversionSource,
    Experiment,
    ExperimentAssignment,
    ExperimentKind,
    ExperimentResult,
    ExperimentUnit,
    Keyword,
    MatchType,
    ModelCheckpoint,
    PerformanceMetric,
    Platform,
    PlatformKind,
    Role,
    Severity,
    TrainingRun,
    TrainingStatus,
    User,
)

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class World:
    """Primary keys of the rows, per table: an ``id``, or a tuple for a composite key
    (``performance_metrics``: account_id, hour, keyword_id)."""

    ids: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, session: Session, *rows: object) -> None:
        session.add_all(rows)
        session.flush()
        for row in rows:
            table = row.__table__.name  # type: ignore[attr-defined]
            identity = inspect(row).identity
            assert identity is not None
            key = identity[0] if len(identity) == 1 else identity
            self.ids.setdefault(table, []).append(key)


def is_row(table: Table, key: Any) -> ColumnElement[bool]:
    """``WHERE`` for the row of ``table`` (a reflected table) with primary key ``key``."""
    columns = list(table.primary_key.columns)
    values = key if isinstance(key, tuple) else (key,)
    return and_(*(column == value for column, value in zip(columns, values, strict=True)))


def build_world(session: Session) -> World:
    world = World()
    acme = Account(slug="acme", name="Acme")
    globex = Account(slug="globex", name="Globex", currency_code="EUR")
    world.add(session, acme, globex)
    alice = User(account_id=acme.id, email="alice@acme.test", role=Role.ADMIN)
    bob = User(account_id=acme.id, email="bob@acme.test", role=Role.ANALYST)
    carol = User(account_id=globex.id, email="carol@globex.test")
    world.add(session, alice, bob, carol)
    sim = Platform(
        account_id=acme.id, kind=PlatformKind.SIM, name="Simulator", external_customer_id="sim-1"
    )
    gads = Platform(
        account_id=acme.id,
        kind=PlatformKind.GOOGLE_ADS,
        name="Google Ads",
        external_customer_id="123-456-7890",
        credentials_ref="env:GOOGLE_ADS_REFRESH_TOKEN",
    )
    world.add(session, sim, gads)
    world.add(
        session,
        ApiKey(
            account_id=acme.id,
            user_id=alice.id,
            name="laptop",
            prefix="ak_alice01",
            secret_hash="argon2-hash",
            scopes=["read", "write"],
        ),
        ApiKey(account_id=acme.id, name="ci", prefix="ak_service", secret_hash="argon2-hash"),
    )
    _campaigns(session, world, acme, sim)
    _machine_learning(session, world, acme, alice)
    _performance(session, world, acme, alice)
    _experiments(session, world, acme, alice)
    return world


def _campaigns(session: Session, world: World, acme: Account, sim: Platform) -> None:
    c1, c2 = (
        Campaign(
            account_id=acme.id,
            platform_id=sim.id,
            external_id=f"c-{n}",
            name=f"Campaign {n}",
            daily_budget_micros=50_000_000,
            target_cpa_micros=10_000_000,
            start_date=date(2026, 1, 1),
            end_date=date(2026, 12, 31),
        )
        for n in (1, 2)
    )
    world.add(session, c1, c2)
    g1, g2 = (
        AdGroup(
            campaign_id=c1.id, external_id=f"g-{n}", name=f"Group {n}", default_bid_micros=900_000
        )
        for n in (1, 2)
    )
    world.add(session, g1, g2)
    world.add(
        session,
        *(
            Ad(
                ad_group_id=g1.id,
                external_id=f"ad-{n}",
                headlines=["Fast shoes"],
                descriptions=["Run"],
                final_url="https://shop.test/",
            )
            for n in (1, 2)
        ),
    )
    world.add(
        session,
        Keyword(
            ad_group_id=g1.id,
            external_id="k-1",
            text="running shoes",
            match_type=MatchType.EXACT,
            bid_micros=1_200_000,
            quality_score=7,
        ),
        Keyword(
            ad_group_id=g1.id,
            external_id="k-2",
            text="running shoes",
            match_type=MatchType.PHRASE,
            bid_micros=800_000,
        ),
        Keyword(
            ad_group_id=g2.id, external_id="k-3", text="trail shoes", match_type=MatchType.BROAD
        ),
    )


def _machine_learning(session: Session, world: World, acme: Account, alice: User) -> None:
    ppo = Agent(account_id=acme.id, name="ppo-main", kind=AgentKind.RL, algorithm="ppo")
    pid = Agent(account_id=acme.id, name="pid", kind=AgentKind.BASELINE, algorithm="pid")
    world.add(session, ppo, pid)
    cfg1 = AgentConfig(
        agent_id=ppo.id,
        version=1,
        config={"lr": 3e-4},
        config_hash="a" * 64,
        seed=1,
        created_by_id=alice.id,
    )
    cfg2 = AgentConfig(
        agent_id=ppo.id, version=2, config={"lr": 1e-4}, config_hash="b" * 64, seed=2
    )
    world.add(session, cfg1, cfg2)
    runs = [
        TrainingRun(
            agent_id=ppo.id,
            agent_config_id=cfg.id,
            status=TrainingStatus.SUCCEEDED,
            scenario="retail-small",
            seed=cfg.seed,
            total_timesteps=100_000,
            mlflow_run_id=f"mlflow-{cfg.version}",
            started_at=T0,
            finished_at=T0 + HOUR,
        )
        for cfg in (cfg1, cfg2)
    ]
    world.add(session, *runs)
    world.add(
        session,
        *(
            ModelCheckpoint(
                agent_id=ppo.id,
                training_run_id=run.id,
                version=n,
                uri=f"file:///models/ppo-{n}.zip",
                sha256=str(n) * 64,
                timesteps=100_000,
                is_active=n == 1,
            )
            for n, run in enumerate(runs, start=1)
        ),
    )


def _performance(session: Session, world: World, acme: Account, alice: User) -> None:
    c1 = session.get(Campaign, world.ids["campaigns"][0])
    k1 = session.get(Keyword, world.ids["keywords"][0])
    assert c1 is not None and k1 is not None
    g1_id = k1.ad_group_id
    world.add(
        session,
        *(
            PerformanceMetric(
                account_id=acme.id,
                campaign_id=c1.id,
                ad_group_id=g1_id,
                keyword_id=k1.id,
                hour=T0 + n * HOUR,
                impressions=100,
                clicks=10,
                conversions=2.0,
                cost_micros=5_000_000,
                conversion_value_micros=20_000_000,
            )
            for n in (0, 1)
        ),
    )
    world.add(
        session,
        *(
            Conversion(
                account_id=acme.id,
                campaign_id=c1.id,
                keyword_id=k1.id,
                conversion_action="purchase",
                occurred_at=T0,
                value_micros=10_000_000,
                source=ConversionSource.PLATFORM,
                external_id=f"order-{n}",
            )
            for n in (1, 2)
        ),
    )
    ppo_id = world.ids["agents"][0]
    first = BidChange(
        account_id=acme.id,
        keyword_id=k1.id,
        cycle_id=uuid.uuid4(),
        old_bid_micros=1_000_000,
        new_bid_micros=1_200_000,
        source=BidSource.AUTOPILOT,
        outcome=BidOutcome.APPLIED,
        user_id=alice.id,
        agent_id=ppo_id,
    )
    world.add(session, first)
    world.add(
        session,
        BidChange(
            account_id=acme.id,
            keyword_id=k1.id,
            cycle_id=uuid.uuid4(),
            old_bid_micros=1_200_000,
            new_bid_micros=1_000_000,
            source=BidSource.ROLLBACK,
            outcome=BidOutcome.APPLIED,
            user_id=alice.id,
            reverts_id=first.id,
        ),
    )
    world.add(
        session,
        Anomaly(
            account_id=acme.id,
            campaign_id=c1.id,
            detector="zscore",
            metric="cost",
            severity=Severity.CRITICAL,
            fingerprint="f" * 64,
            window_start=T0,
            window_end=T0 + HOUR,
            observed_value=900.0,
            expected_value=100.0,
        ),
        Anomaly(
            account_id=acme.id,
            campaign_id=c1.id,
            detector="zscore",
            metric="clicks",
            severity=Severity.WARNING,
            status=AnomalyStatus.RESOLVED,
            fingerprint="e" * 64,
            window_start=T0,
            window_end=T0 + HOUR,
            observed_value=1.0,
            resolved_at=T0 + 2 * HOUR,
            resolved_by_id=alice.id,
        ),
    )


def _experiments(session: Session, world: World, acme: Account, alice: User) -> None:
    units = (ExperimentUnit.CAMPAIGN, ExperimentUnit.AD_GROUP, ExperimentUnit.KEYWORD)
    experiments = [
        Experiment(
            account_id=acme.id,
            name=f"{unit.value} test",
            kind=ExperimentKind.AB_TEST
            if unit is ExperimentUnit.CAMPAIGN
            else ExperimentKind.BANDIT,
            unit=unit,
            primary_metric="profit",
            salt=f"salt-{unit.value}",
            created_by_id=alice.id,
            started_at=T0,
        )
        for unit in units
    ]
    world.add(session, *experiments)
    agent_ids = world.ids["agents"]
    arms: list[tuple[BanditArm, BanditArm]] = []
    for experiment in experiments:
        control = BanditArm(
            experiment_id=experiment.id, name="control", is_control=True, agent_id=agent_ids[1]
        )
        treatment = BanditArm(experiment_id=experiment.id, name="treatment", agent_id=agent_ids[0])
        world.add(session, control, treatment)
        arms.append((control, treatment))
    targets = {
        "campaign_id": world.ids["campaigns"][:2],
        "ad_group_id": world.ids["ad_groups"][:2],
        "keyword_id": world.ids["keywords"][:2],
    }
    for experiment, pair, (column, ids) in zip(experiments, arms, targets.items(), strict=True):
        world.add(
            session,
            *(
                ExperimentAssignment(experiment_id=experiment.id, arm_id=arm.id, **{column: id_})
                for arm, id_ in zip(pair, ids, strict=True)
            ),
        )
    first, pair = experiments[0], arms[0]
    world.add(
        session,
        *(
            ExperimentResult(
                experiment_id=first.id,
                arm_id=arm.id,
                metric="profit",
                period_start=T0,
                period_end=T0 + 24 * HOUR,
                sample_size=1000,
                estimate=12.5,
                ci_low=10.0,
                ci_high=15.0,
                p_value=0.04,
                cost_micros=1_000_000,
            )
            for arm in pair
        ),
    )


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the constraint a statement broke, on either backend."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None:
        return str(diag.constraint_name)
    message = str(exc.orig)
    for prefix in ("CHECK constraint failed: ", "UNIQUE constraint failed: "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message
