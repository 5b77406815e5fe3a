"""A run's metrics: measured after each download, stored by checksum, shown in the DataFrame, filled in
later by ``run.measure`` with any executor, and by ``sora-nb measure``."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import FAST, wait_for

import sora_nb
from sora_nb._cli import main
from sora_nb._judging import BUILTIN, read_scores
from sora_nb._ledger import LEDGER_FILE, Ledger
from sora_nb._ledger_schema import SCHEMA_VERSION
from sora_nb._metrics import METRICS_VERSION
from sora_nb.simulator import SimulatorTransport


def _metric_rows(run_dir: Path) -> list[tuple[str, str, str]]:
    with Ledger.open(run_dir, readonly=True) as ledger:
        return [(c, n, v) for c, n, v in ledger.query("SELECT checksum, name, version FROM metrics ORDER BY checksum")]


def test_every_downloaded_video_is_measured_and_shown(client: sora_nb.Client) -> None:
    run = client.sweep(prompt=["a corgi surfing", "a cat skiing"], seconds=["4", "8"]).start().wait(timeout=60)
    df = run.to_dataframe()
    assert df["metric_duration_s"].tolist() == [4.0, 8.0, 4.0, 8.0]
    assert df["metric_defects"].tolist() == [""] * 4
    assert not df["metric_flag_duration"].any() and (df["metric_motion"] > 0).all()
    assert str(df["metric_flag_black"].dtype) == "boolean" and str(df["metric_frames"].dtype) == "Int64"
    # Stored once per video, by checksum, with the version that measured it.
    rows = _metric_rows(run.run_dir)
    assert sorted(c for c, _, _ in rows) == sorted(df["checksum"])
    assert {(n, v) for _, n, v in rows} == {(BUILTIN, METRICS_VERSION)}
    offline = sora_nb.load_run(run.run_dir)
    assert offline["metric_sharpness"].tolist() == df["metric_sharpness"].tolist()


@pytest.fixture
def unmeasured(tmp_path: Path, sim_transport: SimulatorTransport) -> Iterator[sora_nb.Client]:
    """A simulator client that does not measure after each download (a run made before metrics existed)."""
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path / "runs", transport=sim_transport,
                         measure=False) as c:
        yield c


def test_connect_measure_false_skips_measuring_until_run_measure(unmeasured: sora_nb.Client) -> None:
    """``connect(measure=False)``: downloads are not measured (nothing in the ledger's metrics table, the
    columns empty); ``run.measure()`` then fills them in. (Before: only the private runner flag did this.)"""
    run = unmeasured.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    assert run.counts() == {"completed": 2}
    assert _metric_rows(run.run_dir) == []
    assert run.to_dataframe()["metric_duration_s"].isna().all()
    assert run.measure() == 2
    assert run.to_dataframe()["metric_duration_s"].tolist() == [4.0, 4.0]


@pytest.mark.parametrize("bad", ["no", 0, None])
def test_connect_measure_must_be_a_bool(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"measure must be True or False.*connect\(\.\.\., measure=False\)"):
        sora_nb.connect(time_scale=FAST, run_root=tmp_path, measure=bad)


def test_the_dataframe_of_a_run_whose_client_closed_still_has_its_metrics(tmp_path: Path) -> None:
    with sora_nb.connect(time_scale=0.004, run_root=tmp_path) as client:
        run = client.sweep(prompt="a corgi surfing").start().wait(timeout=60)
        run.rate(run.jobs[0], stars=4, rater="ana")
    df = run.to_dataframe()  # the client (and the ledger it opened) is closed now
    assert df["metric_duration_s"].tolist() == [4.0] and df["stars_mean"].tolist() == [4.0]


def test_a_failed_job_has_no_metrics(client: sora_nb.Client) -> None:
    run = client.sweep(prompt=["a corgi surfing", "a storm [fail]"]).start().wait(timeout=60)
    df = run.to_dataframe()
    assert df["metric_duration_s"].isna().tolist() == [False, True]
    assert df["metric_defects"].tolist()[1] is None


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_measure_fills_in_what_is_missing_with_any_executor(unmeasured: sora_nb.Client, kind: str) -> None:
    run = unmeasured.sweep(prompt=["a corgi surfing", "a cat skiing"], repeats=2).start().wait(timeout=60)
    assert run.to_dataframe()["metric_duration_s"].isna().all()
    seen: list[tuple[int, int]] = []
    if kind == "threads":
        pool: concurrent.futures.Executor = concurrent.futures.ThreadPoolExecutor(2)
    else:  # never plain fork from a process with threads
        pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))
    with pool:
        assert run.measure(pool, progress=lambda done, total: seen.append((done, total))) == 4
        assert run.measure(pool) == 0  # all stored: nothing is measured twice
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert run.to_dataframe()["metric_duration_s"].tolist() == [4.0] * 4


@pytest.mark.slow
def test_measure_on_a_dask_cluster(unmeasured: sora_nb.Client) -> None:
    """A dask.distributed Client's executor measures a run unchanged (a 1-worker local cluster)."""
    distributed = pytest.importorskip("distributed")
    run = unmeasured.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as dask:
        assert run.measure(dask.get_executor(), timeout=60) == 2
    assert run.to_dataframe()["metric_duration_s"].tolist() == [4.0, 4.0]


@pytest.mark.slow
def test_two_dask_workers_store_what_measuring_here_gives(unmeasured: sora_nb.Client) -> None:
    """dask's workers decode with one thread each (their OMP_NUM_THREADS=1) and trim memory eagerly
    (MALLOC_TRIM_THRESHOLD_): every stored value is still the one measure_video gives in this process."""
    distributed = pytest.importorskip("distributed")
    from sora_nb._judging import requested_for
    from sora_nb._metrics import METRIC_KEYS, decode_threads

    run = unmeasured.sweep(prompt=["a corgi surfing", "a cat skiing [defect:frozen]", "a fox [defect:flicker]"],
                           model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as dask:
        assert set(dask.run(decode_threads).values()) == {1}
        assert run.measure(dask.get_executor(), timeout=120) == 6
    df = run.to_dataframe()
    for job, (_, row) in zip(run.jobs, df.iterrows(), strict=True):
        here = sora_nb.measure_video(job.video_path, requested_for(job._record.spec, profile="simulator"))
        assert {key: row[f"metric_{key}"] for key in METRIC_KEYS} == here
    assert sorted(df["metric_defects"]) == ["", "", "flicker", "flicker", "frozen", "frozen"]


def _words(path: Path, spec: dict[str, Any]) -> int:
    return len(spec["prompt"].split())


def test_a_registered_metric_is_stored_and_recomputed_on_a_new_version(client: sora_nb.Client) -> None:
    calls: list[str] = []

    def words(path: Path, spec: dict[str, Any]) -> int:
        calls.append(spec["prompt"])
        return _words(path, spec)

    sora_nb.register_metric("words", words)
    try:
        run = client.sweep(prompt=["a corgi surfing", "a cat on skis at night"]).start().wait(timeout=60)
        assert run.to_dataframe()["metric_words"].tolist() == [3, 6]
        assert run.measure() == 0 and len(calls) == 2
        sora_nb.register_metric("words", lambda p, s: -1, version="2")
        assert run.measure() == 2
        df = sora_nb.load_run(run.run_dir)
        assert df["metric_words"].tolist() == [-1, -1]
        assert df.columns[-1] == "metric_words"  # after the documented columns
    finally:
        sora_nb.unregister_metric("words")


def test_a_failing_metric_never_fails_the_job(client: sora_nb.Client, caplog: pytest.LogCaptureFixture) -> None:
    def broken(path: Path, spec: dict[str, Any]) -> float:
        raise RuntimeError("the judge model is not loaded")

    sora_nb.register_metric("judge", broken)
    try:
        with caplog.at_level(logging.WARNING, logger="sora_nb"):
            run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
        assert run.counts() == {"completed": 2}
        assert "the judge model is not loaded" in caplog.text
        df = run.to_dataframe()
        assert df["metric_duration_s"].notna().all() and "metric_judge" not in df
        with caplog.at_level(logging.WARNING, logger="sora_nb"):
            assert run.measure() == 2  # tried again; logged, skipped, the others still stored
    finally:
        sora_nb.unregister_metric("judge")


def test_a_metric_that_returns_a_non_scalar_is_refused(
    client: sora_nb.Client, caplog: pytest.LogCaptureFixture
) -> None:
    sora_nb.register_metric("blob", lambda p, s: {"a": 1})
    try:
        with caplog.at_level(logging.WARNING, logger="sora_nb"):
            run = client.sweep(prompt="a corgi surfing").start().wait(timeout=60)
        assert "a metric returns a number, bool, str or None" in caplog.text
        assert "metric_blob" not in run.to_dataframe()
    finally:
        sora_nb.unregister_metric("blob")


def test_an_old_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    """A run written before metrics existed: readers see empty metric columns; a writer adds the tables."""
    with sora_nb.connect(time_scale=0.004, run_root=tmp_path, measure=False) as client:
        run_dir = client.sweep(prompt="a corgi surfing").start().wait(timeout=60).run_dir
    with sqlite3.connect(run_dir / LEDGER_FILE) as conn:  # back to schema 1
        conn.execute("DROP TABLE metrics")
        conn.execute("DROP TABLE judgments")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert sora_nb.load_run(run_dir)["metric_duration_s"].isna().all()
    with Ledger.open(run_dir) as ledger:
        assert ledger.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert read_scores(ledger).metrics == {}
    run = sora_nb.resume(run_dir)
    try:
        assert run.measure() == 1
        assert sora_nb.load_run(run_dir)["metric_duration_s"].tolist() == [4.0]
    finally:
        run.close()


def test_cli_measure_shows_progress_and_lists_defects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sora_nb.connect(time_scale=0.004, run_root=tmp_path, measure=False) as client:
        run_dir = client.sweep(prompt=["a corgi surfing", "a cat skiing [defect:frozen]"]).start().wait(
            timeout=60).run_dir
    assert main(["measure", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert "[########################] 2/2 videos measured" in err
    assert "2 video(s) measured; 2 of 2 jobs have metrics." in out
    assert "defects: frozen  (a cat skiing [defect:frozen])" in out and out.count("defects:") == 1
    assert main(["measure", str(run_dir), "--quiet"]) == 0
    assert "0 video(s) measured" in capsys.readouterr().out
    assert main(["measure", str(tmp_path / "nowhere")]) == 2
    assert "no sora_nb run" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_kernel_leaves_no_measuring_process_behind(tmp_path: Path) -> None:
    """SIGKILL the process that owns the pool: its workers (and their forkserver) end on their own, so
    nothing keeps running, or holds the dead kernel's pipes open (before: they waited for ever)."""
    script = tmp_path / "kernel.py"
    script.write_text(
        "import os, time\n"
        "from sora_nb._judging import process_pool\n"
        "if __name__ == '__main__':\n"
        "    process_pool()\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(sora_nb.__file__).parent.parent), *sys.path])}
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        int(child.stdout.readline())  # the pool and its worker are up
        child.kill()
        started = time.monotonic()
        child.communicate(timeout=15)  # EOF only once every process that inherited stdout is gone
        assert time.monotonic() - started < 5
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.mark.slow
def test_a_script_without_a_main_guard_pays_once(tmp_path: Path) -> None:
    """A plain script (no ``if __name__ == "__main__":``) that runs a sweep. Measuring in worker processes
    started by forkserver or spawn re-ran the script in each worker (multiprocessing imports the main module
    there): before, 3 run directories and 3 × the creates at the server for one sweep. Now once."""
    from fault_support import loopback_simulators

    script = tmp_path / "make.py"
    script.write_text(
        "import sora_nb\n"
        "import sys\n"
        "client = sora_nb.connect('openai-compatible', base_url=sys.argv[1], api_key='sk-any', run_root='runs')\n"
        "run = client.sweep(prompt=['a kite', 'a tram']).start()\n"
        "run.wait(timeout=120)\n"
        "print(sorted(run.counts().items()), flush=True)\n"
        "client.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SORA_NB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sora_nb.__file__).parent.parent), *sys.path])
    with loopback_simulators(tmp_path) as start:
        server = start("--time-scale", "0.002")
        done = subprocess.run([sys.executable, str(script), server.base_url], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "[('completed', 2)]" in done.stdout
        assert len(server.audit()) == 2, server.audit()
    assert len(list((tmp_path / "runs").iterdir())) == 1


# ---------------------------------------------------------------------- human judgments
@pytest.fixture
def two_models(client: sora_nb.Client) -> sora_nb.Run:
    return client.sweep(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"]).start().wait(
        timeout=60)


def test_ratings_of_several_raters_show_in_the_dataframe(two_models: sora_nb.Run) -> None:
    run = two_models
    a, b, c, _ = run.jobs
    run.rate(a, stars=5, tags=("sharp", "funny"), rater="ana")
    run.rate(a, stars=3, tags=("sharp",), note="the wave looks odd", rater="bo")
    run.rate(b.id, stars=1, rater="ana")  # a job id works too
    run.rate(c, tags=("blurry",), rater="bo")  # tags alone, no stars
    df = run.to_dataframe()
    assert df["stars_mean"].tolist()[:2] == [4.0, 1.0] and df["stars_mean"].isna().tolist()[2:] == [True, True]
    assert df["ratings"].tolist() == [2, 1, 1, 0]
    assert df["tags"].tolist() == ["funny,sharp", "", "blurry", ""]
    j = run.judgments()
    assert j["rater"].tolist() == ["ana", "bo", "ana", "bo"] and j["kind"].unique().tolist() == ["rating"]
    assert j["tags"].tolist()[0] == ("funny", "sharp") and j["note"].tolist()[1] == "the wave looks odd"


def test_undo_withdraws_the_last_judgment_of_that_rater(two_models: sora_nb.Run) -> None:
    run = two_models
    a, b, c, d = run.jobs
    run.vote(a, b, winner="b", rater="ana")
    run.rate(a, stars=2, rater="bo")
    run.vote(c, d, winner="a", rater="ana")
    undone = run.undo_judgment(rater="ana")
    assert undone is not None and (undone["kind"], undone["job_id"], undone["winner"]) == ("vote", c.id, "a")
    assert run.judgments()["kind"].tolist() == ["vote", "rating"]
    assert run.undo_judgment()["kind"] == "rating"  # anyone's last: bo's rating
    assert run.to_dataframe()["ratings"].sum() == 0
    assert len(run.judgments(include_undone=True)) == 3  # the ledger keeps what was withdrawn
    run.undo_judgment()
    assert run.undo_judgment() is None and run.judgments().empty


def test_judgments_survive_a_restart(tmp_path: Path) -> None:
    with sora_nb.connect(time_scale=0.004, run_root=tmp_path) as client:
        run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
        a, b = run.jobs
        run.vote(b, a, winner="a", rater="ana")
        run.rate(b, stars=5, rater="ana")
        run_dir = run.run_dir
    assert sora_nb.load_run(run_dir)["stars_mean"].tolist()[1] == 5.0
    again = sora_nb.resume(run_dir)
    try:
        assert again.judgments()["kind"].tolist() == ["vote", "rating"]
        board = again.leaderboard(by="model")
        assert board["model"].tolist() == ["sora-2-pro", "sora-2"] and board["wins"].tolist() == [1, 0]
    finally:
        again.close()


def test_bad_judgments_are_refused_with_the_fix(client: sora_nb.Client) -> None:
    run = client.sweep(prompt=["a corgi surfing", "a storm [fail]"]).start().wait(timeout=60)
    ok, failed = run.jobs
    with pytest.raises(ValueError, match="stars must be a whole number from 1 to 5"):
        run.rate(ok, stars=6)
    with pytest.raises(ValueError, match="stars must be a whole number"):
        run.rate(ok, stars=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags must be a list or tuple"):
        run.rate(ok, stars=3, tags="sharp")
    with pytest.raises(ValueError, match="needs stars"):
        run.rate(ok)
    with pytest.raises(ValueError, match="is failed, not completed"):
        run.rate(failed, stars=3)
    with pytest.raises(ValueError, match="is not a job of this run"):
        run.rate("j9999-0000", stars=3)
    with pytest.raises(ValueError, match="winner must be one of 'a', 'b', 'tie', 'both_bad'"):
        run.vote(ok, failed, winner="left")
    with pytest.raises(ValueError, match="two different videos"):
        run.vote(ok, ok, winner="a")
    with pytest.raises(ValueError, match="rater looks like an API key"):
        run.rate(ok, stars=3, rater="sk-proj-abcdefghijklmnopqrstuvwx")
    with pytest.raises(TypeError, match="a Job of this run or its id"):
        run.rate(3, stars=3)  # type: ignore[arg-type]
    run.rate(ok, stars=3, note="my key is sk-proj-abcdefghijklmnopqrstuvwx", rater="ana")
    assert "sk-proj-abcdefghijklmnop" not in run.judgments()["note"].iloc[0]  # scrubbed before it is stored
    assert len(run.judgments()) == 1  # nothing of the refused ones was written


def test_a_killed_measuring_worker_is_replaced(unmeasured: sora_nb.Client, caplog: pytest.LogCaptureFixture) -> None:
    """SIGKILL the default pool's workers (an out-of-memory kill): the failure is logged, and the next
    measuring starts new workers (before: the broken pool failed every later video for good)."""
    import signal

    from sora_nb._judging import process_pool

    run = unmeasured.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    pool = process_pool()
    workers = list(getattr(pool, "_processes", {}).values())
    assert workers
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    for worker in workers:
        worker.join(10)
    # The pool learns of the deaths in its own thread; work sent before that is lost in CPython's pool.
    wait_for(lambda: getattr(pool, "_broken", False), what="the pool to notice", timeout=10)
    with caplog.at_level(logging.WARNING, logger="sora_nb"):
        run.measure()
    assert process_pool() is not pool
    assert run.measure() + int(run.to_dataframe()["metric_duration_s"].notna().sum()) >= 2
    assert run.to_dataframe()["metric_duration_s"].notna().all()


def test_the_default_pools_workers_decode_with_their_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 workers each decoding with every core fight over them: each gets cores / workers (before: all)."""
    from sora_nb._judging import process_pool, shutdown_pool
    from sora_nb._metrics import decode_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    shutdown_pool()  # a pool made before may have inherited another environment
    cores = os.cpu_count() or 1
    assert process_pool().submit(decode_threads).result(timeout=30) == max(1, cores // min(2, cores))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice is kept
    shutdown_pool()
    assert process_pool().submit(decode_threads).result(timeout=30) == 3
    shutdown_pool()


def test_a_schema_2_ledger_gains_the_judging_tables(tmp_path: Path) -> None:
    """A ledger written with unique remote ids but before metrics (schema 2) is brought to schema 3."""
    Ledger.create(tmp_path, meta={}).close()
    with sqlite3.connect(tmp_path / LEDGER_FILE) as conn:
        conn.execute("DROP TABLE metrics")
        conn.execute("DROP TABLE judgments")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with Ledger.open(tmp_path, readonly=True) as reader:  # a reader changes nothing
        assert reader.query("SELECT COUNT(*) FROM metrics") == [] and reader.query("PRAGMA user_version") == [(2,)]
    with Ledger.open(tmp_path) as ledger:
        assert ledger.query("PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(5,)]
        assert ledger.query("SELECT COUNT(*) FROM judgments") == [(0,)]
