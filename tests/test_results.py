"""The run DataFrame: schema and dtypes, timings, unknown costs, categoricals, empty runs, export, load_run."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sora_nb._results as results
from sora_nb._ledger import LEDGER_FILE, JobRecord, Ledger
from sora_nb._results import COLUMNS, REQUEST_COLUMNS, export, load_run, records_to_dataframe
from sora_nb._types import JobSpec

AXES = ["prompt", "model", "seconds", "repeat"]
LEADING = ["prompt", "model", "seconds", "repeat", "size", "style"]  # axes, then the other request columns
T0 = 1_795_000_000.0


def job(seq: int, prompt: str, model: str, seconds: str, repeat: int = 0, **changes: Any) -> JobRecord:
    axes = {"prompt": prompt, "model": model, "seconds": seconds, "repeat": repeat}
    spec = JobSpec(prompt, model, "1280x720", seconds, repeat=repeat, axes=axes)
    return dataclasses.replace(JobRecord(f"j{seq:04d}-abcd", seq, spec), **changes)


def sample(run_dir: Path) -> list[JobRecord]:
    (run_dir / "videos").mkdir(parents=True, exist_ok=True)
    (run_dir / "videos" / "j0001-abcd.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return [
        job(1, "a corgi", "sora-2", "8", status="completed", create_state="acked", remote_id="video_1",
            progress=100, submitted_at=T0, remote_created_at=T0 + 1, started_at=T0 + 10, completed_at=T0 + 70,
            downloaded_at=T0 + 72, video_path="videos/j0001-abcd.mp4", thumbnail_path="thumbnails/gone.webp",
            checksum="sha256:ab", estimated_cost_usd=0.8, reported_cost_usd=0.75, attempts=1, polls=12),
        # Never seen in progress: the queue lasted until it was seen finished.
        job(2, "a cat", "sora-2-pro", "4", status="failed", create_state="acked", remote_id="video_2",
            submitted_at=T0, completed_at=T0 + 30, error_code="moderation_blocked", error_message="blocked",
            attempts=1, polls=3),
        job(3, "a corgi", "sora-2-pro", "12", repeat=1, status="in_progress", create_state="acked",
            remote_id="video_3", progress=40, submitted_at=T0, started_at=T0 + 5, attempts=1, polls=2),
        job(4, "a cat", "sora-2", "4", repeat=1),  # not sent yet
    ]  # fmt: skip


@pytest.fixture
def df(tmp_path: Path) -> pd.DataFrame:
    return records_to_dataframe(sample(tmp_path), run_dir=tmp_path, axes=AXES, run_id="run-1")


def test_columns_come_in_the_documented_order_with_the_documented_dtypes(df: pd.DataFrame) -> None:
    assert list(df.columns) == LEADING + [name for name, _, _ in COLUMNS]
    for name, dtype, _ in COLUMNS:
        assert str(df[name].dtype) == dtype, name
    assert list(df["job_id"]) == ["j0001-abcd", "j0002-abcd", "j0003-abcd", "j0004-abcd"]
    assert df.attrs == {"run_dir": str(df.attrs["run_dir"]), "run_id": "run-1"}


def test_the_module_docstring_table_matches_columns() -> None:
    doc = results.__doc__ or ""
    for name, dtype, _ in COLUMNS:
        rows = [line.split(maxsplit=1) for line in doc.splitlines() if line.strip()]
        assert any(row[0] == name and row[1].startswith(dtype + " ") for row in rows if len(row) == 2), name


def test_rows_are_in_seq_order(tmp_path: Path) -> None:
    records = sample(tmp_path)
    shuffled = records_to_dataframe(records[::-1], run_dir=tmp_path, axes=AXES)
    assert list(shuffled["job_id"]) == [r.job_id for r in records]


def test_timestamps_are_timezone_aware_utc(df: pd.DataFrame) -> None:
    first = df.iloc[0]
    assert first["submitted_at"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert first["created_at"] == pd.Timestamp(T0 + 1, unit="s", tz="UTC")
    assert str(first["downloaded_at"].tz) == "UTC"
    assert df["started_at"].isna().tolist() == [False, True, False, True]
    assert pd.isna(df.iloc[3]["submitted_at"])


def test_durations(df: pd.DataFrame) -> None:
    done, failed, running, unsent = (df.iloc[i] for i in range(4))
    assert (done["queue_s"], done["generation_s"], done["total_s"]) == (10.0, 60.0, 70.0)
    # Never seen in progress: queue until seen terminal, no generation time.
    assert failed["queue_s"] == 30.0 and pd.isna(failed["generation_s"]) and failed["total_s"] == 30.0
    assert running["queue_s"] == 5.0 and pd.isna(running["generation_s"]) and pd.isna(running["total_s"])
    assert unsent[["queue_s", "generation_s", "total_s"]].isna().all()


def test_seconds_generated_and_costs_never_say_zero_for_unknown(df: pd.DataFrame) -> None:
    assert df["seconds_generated"].tolist()[:2] == [8.0, 0.0]  # completed: as asked; failed: nothing
    assert df["seconds_generated"].iloc[2:].isna().all()  # still going: not known yet
    assert df["estimated_cost_usd"].iloc[0] == 0.8
    assert df["estimated_cost_usd"].iloc[1:].isna().all()
    assert df["reported_cost_usd"].iloc[0] == 0.75
    assert df["reported_cost_usd"].iloc[1:].isna().all()
    assert df["reported_cost_usd"].sum() == 0.75


def test_text_missing_values_are_none_and_paths_are_absolute_when_the_file_exists(df: pd.DataFrame) -> None:
    video = df["video_path"].iloc[0]
    assert Path(video).is_absolute() and Path(video).is_file()
    assert df["video_path"].tolist()[1:] == [None, None, None]
    assert df["thumbnail_path"].tolist() == [None] * 4  # recorded, but not on disk
    assert df["remote_id"].iloc[3] is None and df["error_code"].iloc[0] is None
    assert df["progress"].tolist()[:3] == [100, pd.NA, 40]
    assert df["attempts"].tolist() == [1, 1, 1, 0]


def test_axes_and_status_are_categoricals_in_sweep_order(df: pd.DataFrame) -> None:
    assert list(df["model"].cat.categories) == ["sora-2", "sora-2-pro"]
    assert list(df["seconds"].cat.categories) == ["8", "4", "12"]  # first appearance, not "12" < "4"
    assert list(df["prompt"].cat.categories) == ["a corgi", "a cat"]
    assert str(df["size"].dtype) == "category" and str(df["repeat"].dtype) == "int64"
    assert df["style"].isna().all()
    assert list(df["status"].cat.categories) == [
        "pending_submit", "queued", "in_progress", "completed", "failed", "cancelled", "expired", "unknown",
        "ambiguous",
    ]  # fmt: skip
    assert df["status"].tolist() == ["completed", "failed", "in_progress", "pending_submit"]
    assert df["kind"].tolist() == ["create"] * 4


def test_other_axes_keep_their_type_and_missing_axes_fall_back_to_the_spec(tmp_path: Path) -> None:
    spec = JobSpec("p", "sora-2", "1280x720", "4", axes={"n": 3, "mood": "calm", "status": "x"})
    remix = JobSpec("p2", "sora-2", "1280x720", "4", kind="remix", parent_id="video_1")  # outside the sweep
    records = [JobRecord("j1", 1, spec), JobRecord("j2", 2, remix)]
    frame = records_to_dataframe(records, run_dir=tmp_path, axes=["n", "mood", "model", "status"])
    assert list(frame.columns[:7]) == ["n", "mood", "model", "axis_status", "prompt", "size", "seconds"]
    assert frame["n"].tolist()[0] == 3 and pd.isna(frame["n"].iloc[1])
    assert str(frame["mood"].dtype) == "category"
    assert frame["model"].tolist() == ["sora-2", "sora-2"]
    assert frame["kind"].tolist() == ["create", "remix"] and frame["parent_id"].tolist() == [None, "video_1"]


def test_a_status_word_from_a_newer_writer_reads_as_unknown(tmp_path: Path) -> None:
    record = JobRecord("j1", 1, JobSpec("p", "sora-2", "1280x720", "4"), status="paused")
    assert records_to_dataframe([record], run_dir=tmp_path, axes=[])["status"].tolist() == ["unknown"]


def test_an_empty_run_has_the_same_columns_and_dtypes(tmp_path: Path, df: pd.DataFrame) -> None:
    empty = records_to_dataframe([], run_dir=tmp_path, axes=AXES)
    assert len(empty) == 0
    assert list(empty.columns) == list(df.columns)
    assert empty.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()


# ---------------------------------------------------------------------- load_run


def write_run(run_dir: Path) -> None:
    with Ledger.create(run_dir, meta={"run_id": "r-42", "axes": AXES, "profile": "simulator"}) as ledger:
        ledger.add_jobs(sample(run_dir))


def test_load_run_reads_the_ledger(tmp_path: Path, df: pd.DataFrame) -> None:
    write_run(tmp_path)
    loaded = load_run(tmp_path)
    assert loaded.attrs == {"run_dir": str(tmp_path.absolute()), "run_id": "r-42"}
    pd.testing.assert_frame_equal(loaded, df, check_like=False)


def test_load_run_works_while_another_connection_is_writing(tmp_path: Path) -> None:
    write_run(tmp_path)
    with Ledger.open(tmp_path) as writer:
        writer.update_job("j0004-abcd", status="queued")
        blocker = sqlite3.connect(tmp_path / LEDGER_FILE, isolation_level=None, timeout=0)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            blocker.execute("UPDATE jobs SET status = 'cancelled'")
            assert load_run(tmp_path)["status"].tolist()[3] == "queued"  # committed state, not blocked
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()


def test_load_run_from_another_process(tmp_path: Path) -> None:
    write_run(tmp_path)
    code = (
        "import sys; from sora_nb._results import load_run; "
        "df = load_run(sys.argv[1]); print(len(df), df.attrs['run_id'])"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "r-42"]


def test_load_run_on_a_missing_directory_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "sora_runs" / "20261121-000000-dead"
    with pytest.raises(FileNotFoundError) as info:
        load_run(missing)
    message = str(info.value)
    assert str(missing) in message and "sora-nb ls" in message
    assert not missing.exists()


def test_results_module_does_not_import_pandas_at_import_time() -> None:
    code = "import sys, sora_nb._results, sora_nb._ledger; print('pandas' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------- export


def missing_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    # pandas 3 reads text back as its str dtype (NaN for missing); ours is object with None.
    return frame.astype(object).where(frame.notna(), None)


def test_parquet_round_trip_keeps_dtypes_and_attrs(tmp_path: Path, df: pd.DataFrame) -> None:
    path = export(df, tmp_path / "out.parquet")
    assert path == tmp_path / "out.parquet"
    back = pd.read_parquet(path)
    assert back.attrs == df.attrs
    # Parquet keeps every dtype but text (see missing_as_none) and a categorical with no categories at all.
    typed = [c for c in df.columns if str(df[c].dtype) != "object" and df[c].notna().any()]
    pd.testing.assert_frame_equal(back[typed], df[typed])
    pd.testing.assert_frame_equal(missing_as_none(back), missing_as_none(df))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_csv_round_trip_keeps_values(tmp_path: Path, df: pd.DataFrame) -> None:
    back = pd.read_csv(export(df, tmp_path / "out.CSV"))
    assert list(back.columns) == list(df.columns)
    for name, dtype, _ in COLUMNS:
        if dtype.startswith("datetime64"):
            parsed = pd.to_datetime(back[name], utc=True).astype("datetime64[ns, UTC]")
            pd.testing.assert_series_equal(parsed, df[name])
    assert back["estimated_cost_usd"].isna().tolist() == [False, True, True, True]
    assert back["status"].tolist() == df["status"].astype(str).tolist()
    assert back["seconds"].astype(str).tolist() == ["8", "4", "12", "4"]


def test_export_of_an_empty_run(tmp_path: Path) -> None:
    empty = records_to_dataframe([], run_dir=tmp_path, axes=AXES)
    assert list(pd.read_parquet(export(empty, tmp_path / "e.parquet")).columns) == list(empty.columns)
    assert list(pd.read_csv(export(empty, tmp_path / "e.csv")).columns) == list(empty.columns)


def test_export_refuses_other_suffixes(tmp_path: Path, df: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        export(df, tmp_path / "out.xlsx")


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "sora-nb\[data\]"'):
        export(df, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_request_columns_are_the_spec_fields_the_ledger_copies() -> None:
    assert REQUEST_COLUMNS == ("prompt", "model", "size", "seconds", "style")
