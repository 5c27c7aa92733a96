"""The pure parts of tradedb.observe: records as rows, JSON safety, blocking chains, spill files."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tradedb.observe import records as rec
from tradedb.observe import spill as sp
from tradedb.observe.activity import blocking_chains, near_retention


def test_levels_map_to_the_five_of_the_table() -> None:
    assert [rec.level_name(n) for n in (5, 10, 15, 20, 25, 30, 40, 45, 50, 60)] == [
        "debug",
        "debug",
        "debug",
        "info",
        "info",
        "warning",
        "error",
        "error",
        "critical",
        "critical",
    ]


@given(
    st.dictionaries(st.text(max_size=5), st.recursive(st.none() | st.integers() | st.text(), st.lists, max_leaves=5))
)
def test_json_values_pass_through_unchanged(data: dict[str, Any]) -> None:
    assert json.loads(rec.dumps(data)) == json.loads(json.dumps(data).replace("\\u0000", "\\ufffd"))


def test_values_json_cannot_store_become_their_repr_and_are_listed() -> None:
    data = {"ok": 1, "when": datetime(2026, 1, 1), "cycle": None, "nan": float("nan")}
    loop: list[Any] = []
    loop.append(loop)
    data["cycle"] = loop
    out = json.loads(rec.dumps(data))
    assert out["ok"] == 1 and out["when"] == "datetime.datetime(2026, 1, 1, 0, 0)"
    assert out["cycle"] == "[[...]]" and out["nan"] == "nan"  # jsonb has no NaN
    assert out[rec.REPR_MARK] == ["when", "cycle", "nan"]
    assert "\\u0000" not in rec.dumps({"a": "x\x00y"})


def test_a_long_message_is_cut_with_a_marker_and_its_length() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "m" * 500, None, None)
    row = rec.log_row(rec.capture(record, 1), "svc", 42, max_message=100)
    message, data = row[4], row[5]
    assert len(message) == 100 and message.endswith(rec.TRUNCATED)
    assert data == {rec.TRUNCATED_MARK: 500}
    assert row[8:] == (42, 1) and row[1] == "svc" and row[0].tzinfo is UTC


def test_blocking_chains_run_from_the_root_and_stop_at_cycles() -> None:
    activity = [
        {"pid": 1, "blocked_by": []},
        {"pid": 2, "blocked_by": [1]},
        {"pid": 3, "blocked_by": [2]},
        {"pid": 7, "blocked_by": [8]},
        {"pid": 8, "blocked_by": [7]},
    ]
    assert blocking_chains(activity) == [[1, 2], [1, 2, 3], [7, 8], [8, 7]]


def test_partitions_near_retention() -> None:
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    parts: list[dict[str, Any]] = [
        {"table": "t", "partition": "t_old", "hi": datetime(2026, 5, 1, tzinfo=UTC)},
        {"table": "t", "partition": "t_edge", "hi": datetime(2026, 6, 4, tzinfo=UTC)},
        {"table": "t", "partition": "t_new", "hi": datetime(2026, 6, 9, tzinfo=UTC)},
        {"table": "t", "partition": "t_default", "hi": None},
        {"table": "u", "partition": "u_old", "hi": datetime(2020, 1, 1, tzinfo=UTC)},
    ]
    near = near_retention(parts, {"t": timedelta(days=7)}, now)
    assert [(p["partition"], p["dropped_in_s"]) for p in near] == [("t_old", 0.0), ("t_edge", 12 * 3600.0)]


def test_spill_files_rotate_and_replay_in_order(tmp_path: Path) -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    spill = sp.SpillFile(tmp_path, "svc/with odd chars")
    spill.append(
        [("logging.system_logs", (ts, "svc", "info", "l", f"m{i}", {"i": i}, None, "h", 1, i)) for i in range(3)]
    )
    rotated = spill.rotate()
    assert rotated is not None and rotated[2] == 3 and spill.pending == 0
    spill.append([("logging.system_logs", (ts, "svc", "info", "l", "m3", None, None, "h", 1, 3))])
    seen: list[sp.Row] = []

    def keep(rows: list[sp.Row], into: list[sp.Row] = seen) -> bool:
        into.extend(rows)
        return True

    assert sp.replay_file(rotated[0], rotated[1], keep) == 3
    assert [r[1][4] for r in seen] == ["m0", "m1", "m2"] and seen[0][1][0] == ts and seen[2][1][5] == {"i": 2}
    assert not rotated[0].exists()
    spill.close()
    assert spill.path.exists()  # one row still pending: left for the next handler
    orphans = list(sp.orphans(tmp_path, tmp_path / "none"))
    assert [p for p, _ in orphans] == [spill.path]
    later: list[sp.Row] = []
    sp.replay_file(orphans[0][0], orphans[0][1], lambda rows: keep(rows, later))
    assert [r[1][4] for r in later] == ["m3"] and not spill.path.exists()
