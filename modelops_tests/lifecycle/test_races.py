"""Two promotions racing in one process (threads, each with its own connection pool) on
SQLite and PostgreSQL: one champion and a consistent audit log. (Promotions from two
processes on PostgreSQL are issue 11's tests.)"""

from __future__ import annotations

import dataclasses
import threading

from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.stores.db.engine import migrate
from modelops_tests.fixtures.registry_rows import adapter_fields
from modelops_tests.fixtures.workspace import make_workspace


def register_passed(registry, n: int) -> int:
    version = registry.register(
        **adapter_fields(
            artifact_uri=f"/artifacts/{n}", artifact_sha256=f"{n:064x}", weights_sha256=f"{n:064x}"
        )
    )
    registry.record_evaluation(
        version.id, metrics={}, gate={"passed": True, "checks": []}, who="tester"
    )
    return version.id


def race(settings, adapter_ids: list[int]) -> list:
    """Promote each id from its own thread and platform, all released at once."""
    barrier = threading.Barrier(len(adapter_ids))
    results: dict[int, object] = {}

    def promote(i: int, adapter_id: int) -> None:
        platform = Platform.from_settings(settings)
        try:
            barrier.wait()
            results[i] = promote_if_passed(platform, adapter_id, who=f"run {i}", why="race")
        except Exception as exc:  # collected: the test asserts there is none
            results[i] = exc
        finally:
            platform.registry.close()

    threads = [threading.Thread(target=promote, args=(i, a)) for i, a in enumerate(adapter_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results[i] for i in range(len(adapter_ids))]


def test_two_promotions_of_one_candidate_make_one_champion(tiny_catalog, tmp_path, db_url):
    settings = dataclasses.replace(make_workspace(tmp_path, tiny_catalog), database_url=db_url)
    migrate(db_url)
    platform = Platform.from_settings(settings)
    adapter_id = register_passed(platform.registry, 1)
    results = race(settings, [adapter_id, adapter_id])
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(r is None for r in results) == [False, True]  # one promoted, one found it done
    promotions = [e for e in platform.registry.audit("demo") if e.action == "promote"]
    assert [e.adapter_id for e in promotions] == [adapter_id]
    assert platform.registry.alias("demo", "champion").id == adapter_id
    platform.registry.close()


def test_two_candidates_promoted_at_once_leave_one_champion_and_a_chain(
    tiny_catalog, tmp_path, db_url
):
    settings = dataclasses.replace(make_workspace(tmp_path, tiny_catalog), database_url=db_url)
    migrate(db_url)
    platform = Platform.from_settings(settings)
    first, second = register_passed(platform.registry, 1), register_passed(platform.registry, 2)
    results = race(settings, [first, second])
    assert not any(isinstance(r, Exception) for r in results), results
    promotions = [e for e in platform.registry.audit("demo") if e.action == "promote"][::-1]
    assert sorted(e.adapter_id for e in promotions) == [first, second]
    earlier, later = promotions
    assert earlier.previous_adapter_id is None
    assert later.previous_adapter_id == earlier.adapter_id  # serialized, none lost
    champion = platform.registry.alias("demo", "champion")
    assert champion.id == later.adapter_id and champion.status == "champion"
    assert platform.registry.get(earlier.adapter_id).status == "retired"
    platform.registry.close()
