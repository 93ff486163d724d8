"""Concurrent promotions from two processes against PostgreSQL: exactly one champion,
``serving`` on it, one adapter with status champion, and an audit log whose promote
entries chain (each records the champion it replaced)."""

from __future__ import annotations

import multiprocessing

import pytest

from modelops.stores.registry import Registry
from modelops_tests.fixtures.promotion_race import promote_when_released, seed_candidates

pytestmark = pytest.mark.postgres


def race(url: str, contenders: list[int]) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(contenders))
    results = context.Queue()
    workers = [
        context.Process(target=promote_when_released, args=(url, a, barrier, results))
        for a in contenders
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return outcomes


def check_consistent(url: str, recipe: str = "race") -> int:
    with Registry(url) as registry:
        aliases = registry.aliases(recipe, "v1")
        champion = aliases["champion"]
        assert registry.aliases(recipe)["serving"] == champion
        statuses = [v.status for v in registry.list(recipe)]
        assert statuses.count("champion") == 1
        assert registry.get(champion).status == "champion"
        promotes = sorted(
            (e for e in registry.audit(recipe) if e.action == "promote"), key=lambda e: e.id
        )
    previous = None
    for entry in promotes:
        assert entry.previous_adapter_id == previous
        previous = entry.adapter_id
    assert previous == champion
    return champion


@pytest.mark.parametrize("first_champion", [False, True], ids=["no-champion", "champion"])
def test_two_processes_promote_at_once(pg_url, first_champion):
    ids = seed_candidates(pg_url, 3)
    if first_champion:
        with Registry(pg_url) as registry:
            registry.promote(ids[0], who="seed", why="first", evidence={})
    contenders = ids[1:]
    outcomes = race(pg_url, contenders)
    promoted = [a for a, outcome, _ in outcomes if outcome == "promoted"]
    failed = [(a, outcome, detail) for a, outcome, detail in outcomes if outcome != "promoted"]
    # Both promotions are serialized by the row locks: both succeed, one after the other,
    # and the champion is whichever went second.
    assert sorted(promoted) == contenders, failed
    champion = check_consistent(pg_url)
    assert champion in contenders
