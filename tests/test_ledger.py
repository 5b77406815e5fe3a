"""The run ledger: round trips, validation, WAL readers, crash consistency, versions, no keys, list_runs."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_nb._errors import SoraError
from sora_nb._ledger import LEDGER_FILE, JobRecord, Ledger
from sora_nb._ledger_schema import SCHEMA_VERSION
from sora_nb._runs import RunSummary, list_runs, new_run_id
from sora_nb._types import JobSpec

REPO = Path(__file__).resolve().parents[1]


def spec(prompt: str = "a corgi surfing", **changes: Any) -> JobSpec:
    base = JobSpec(prompt, "sora-2", "1280x720", "4", axes={"prompt": prompt, "model": "sora-2", "repeat": 0})
    return dataclasses.replace(base, **changes)


def record(seq: int, **changes: Any) -> JobRecord:
    return dataclasses.replace(JobRecord(f"j{seq:04d}-abcd", seq, spec()), **changes)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.create(tmp_path / "run", meta={"profile": "simulator", "axes": ["prompt", "model"]}) as led:
        yield led


# ---------------------------------------------------------------------- create / open


def test_create_makes_the_run_directory_and_open_round_trips(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    job = record(
        1,
        spec=spec(style="anime", input_reference="ref.png", axes={"prompt": "a corgi surfing", "n": 3, "x": [1]}),
        create_state="acked",
        remote_id="video_123",
        status="completed",
        progress=100,
        submitted_at=1000.5,
        remote_created_at=1001.0,
        started_at=1002.25,
        completed_at=1010.0,
        downloaded_at=1011.0,
        video_path="videos/j0001-abcd.mp4",
        thumbnail_path="thumbnails/j0001-abcd.webp",
        checksum="sha256:00ff",
        estimated_cost_usd=0.4,
        reported_cost_usd=0.41,
        attempts=1,
        polls=7,
        updated_at=1011.5,
    )
    with Ledger.create(run_dir, meta={"profile": "simulator", "axes": ["prompt"], "sweep": {"model": ["a"]}}) as led:
        assert led.run_dir == run_dir
        assert led.videos_dir.is_dir() and led.thumbnails_dir.is_dir()
        led.add_job(job)

    with Ledger.open(run_dir) as led:
        meta = led.meta()
        assert meta["profile"] == "simulator"
        assert meta["axes"] == ["prompt"] and meta["sweep"] == {"model": ["a"]}
        assert meta["run_id"] == "r1" and isinstance(meta["created_at"], float)  # defaults
        again = led.get_job("j0001-abcd")
    assert again == job
    assert again.spec.axes == {"prompt": "a corgi surfing", "n": 3, "x": [1]}  # axes are not part of ==

    # SQL readers get the spec's main fields as plain columns.
    with sqlite3.connect(run_dir / LEDGER_FILE) as conn:
        row = conn.execute("SELECT prompt, model, size, seconds, style, status FROM jobs").fetchone()
    conn.close()
    assert row == ("a corgi surfing", "sora-2", "1280x720", "4", "anime", "completed")


def test_create_refuses_an_existing_ledger_and_open_explains_a_missing_one(tmp_path: Path) -> None:
    Ledger.create(tmp_path / "r", meta={}).close()
    with pytest.raises(FileExistsError, match="resume"):
        Ledger.create(tmp_path / "r", meta={})

    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        Ledger.open(missing)
    assert str(missing) in str(info.value) and "sora-nb ls" in str(info.value)
    assert not missing.exists()  # opening must not create anything


def test_jobs_are_added_before_they_are_updated(ledger: Ledger) -> None:
    assert ledger.next_seq() == 1
    ledger.add_job(record(1))
    ledger.add_jobs([record(2), record(3)])
    assert ledger.next_seq() == 4
    fresh = ledger.get_job("j0002-abcd")
    assert (fresh.create_state, fresh.status, fresh.attempts, fresh.polls) == ("pending", "pending_submit", 0, 0)
    assert fresh.updated_at is not None

    ledger.update_job("j0002-abcd", create_state="sending", submitted_at=5.0, attempts=1)
    ledger.update_job("j0002-abcd", create_state="acked", remote_id="video_2", status="queued")
    got = ledger.get_job("j0002-abcd")
    assert (got.create_state, got.remote_id, got.status, got.submitted_at, got.attempts) == (
        "acked", "video_2", "queued", 5.0, 1,
    )  # fmt: skip
    assert got.updated_at is not None and got.updated_at >= fresh.updated_at
    assert [j.seq for j in ledger.jobs()] == [1, 2, 3]

    with pytest.raises(KeyError):
        ledger.update_job("j9999-none", status="queued")
    with pytest.raises(KeyError):
        ledger.get_job("j9999-none")


def test_add_jobs_is_one_transaction(ledger: Ledger) -> None:
    ledger.add_job(record(1))
    with pytest.raises(ValueError, match="already"):
        ledger.add_jobs([record(2), record(1, job_id="j0001-abcd")])
    assert [j.job_id for j in ledger.jobs()] == ["j0001-abcd"]  # j0002 was rolled back with it


def test_jobs_are_ordered_by_seq_not_insertion(ledger: Ledger) -> None:
    ledger.add_jobs([record(3), record(1), record(2)])
    assert [j.seq for j in ledger.jobs()] == [1, 2, 3]


def test_update_refuses_unknown_fields_and_bad_words(ledger: Ledger) -> None:
    ledger.add_job(record(1))
    before = ledger.get_job("j0001-abcd")
    with pytest.raises(ValueError, match="video_url"):
        ledger.update_job("j0001-abcd", video_url="x")
    with pytest.raises(ValueError, match="job_id"):
        ledger.update_job("j0001-abcd", job_id="j0002-abcd")
    with pytest.raises(ValueError, match="in_progress"):
        ledger.update_job("j0001-abcd", status="processing")
    with pytest.raises(ValueError, match="sending"):
        ledger.update_job("j0001-abcd", create_state="sent")
    assert ledger.get_job("j0001-abcd") == before  # nothing half-applied


def test_update_of_the_spec_keeps_the_plain_columns_in_step(ledger: Ledger) -> None:
    ledger.add_job(record(1))
    ledger.update_job("j0001-abcd", spec=spec("a cat skiing"))
    assert ledger.get_job("j0001-abcd").spec.prompt == "a cat skiing"
    prompt = ledger._conn.execute("SELECT prompt FROM jobs").fetchone()[0]
    assert prompt == "a cat skiing"


def test_set_meta_adds_and_replaces(ledger: Ledger) -> None:
    ledger.set_meta(budget_usd=20.0, profile="openai-compatible")
    assert ledger.meta()["budget_usd"] == 20.0
    assert ledger.meta()["profile"] == "openai-compatible"


def test_the_caller_record_is_not_changed_by_add(ledger: Ledger) -> None:
    job = record(1)
    ledger.add_job(job)
    assert job.updated_at is None


# ---------------------------------------------------------------------- readers in other connections


def test_a_readonly_reader_sees_committed_state_while_a_writer_holds_the_lock(ledger: Ledger) -> None:
    ledger.add_job(record(1))
    assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # Another writer connection inside an uncommitted EXCLUSIVE transaction: in rollback-journal mode this
    # would lock every reader out; in WAL mode readers go on and see the last committed state.
    other = sqlite3.connect(ledger.run_dir / LEDGER_FILE, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("UPDATE jobs SET status = 'failed'")
        with Ledger.open(ledger.run_dir, readonly=True) as reader:
            assert [j.status for j in reader.jobs()] == ["pending_submit"]
            with pytest.raises(PermissionError, match="read-only"):
                reader.update_job("j0001-abcd", status="queued")
        other.execute("COMMIT")
    finally:
        other.close()

    ledger.update_job("j0001-abcd", progress=10)
    with Ledger.open(ledger.run_dir, readonly=True) as reader:
        got = reader.get_job("j0001-abcd")
    assert (got.status, got.progress) == ("failed", 10)


def test_a_reader_sees_each_commit_as_it_happens(ledger: Ledger) -> None:
    with Ledger.open(ledger.run_dir, readonly=True) as reader:
        assert reader.jobs() == []
        ledger.add_job(record(1))
        assert [j.job_id for j in reader.jobs()] == ["j0001-abcd"]
        ledger.update_job("j0001-abcd", progress=50)
        assert reader.get_job("j0001-abcd").progress == 50


# ---------------------------------------------------------------------- crash consistency

_CHILD = textwrap.dedent(
    """
    import sys
    from sora_nb._ledger import JobRecord, Ledger
    from sora_nb._types import JobSpec

    ledger = Ledger.create(sys.argv[1], meta={"profile": "simulator"})
    ledger.add_jobs([JobRecord(f"j{i:04d}", i, JobSpec("p", "sora-2", "1280x720", "4")) for i in range(1, 6)])
    print("ready", flush=True)
    n = 0
    while True:  # killed from outside
        n += 1
        job_id = f"j{n % 5 + 1:04d}"
        # Two fields in one call: a crash must never leave one without the other.
        ledger.update_job(job_id, polls=n, progress=n % 101, status="in_progress")
        print(job_id, n, flush=True)
    """
)


@pytest.mark.slow
def test_a_sigkill_in_the_middle_of_updates_loses_no_committed_update(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    last_committed: dict[str, int] = {}
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", child.stderr.read() if child.stderr else ""
        while len(last_committed) < 5 or max(last_committed.values()) < 300:
            line = child.stdout.readline()
            assert line, f"the writer died by itself: {child.stderr.read() if child.stderr else ''}"
            job_id, n = line.split()
            last_committed[job_id] = int(n)
        os.kill(child.pid, signal.SIGKILL)  # while it is still in its loop of updates
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(run_dir / LEDGER_FILE) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
    # Read-only first, as resume() and load_run() do: the killed writer's WAL must be readable as it is.
    with Ledger.open(run_dir, readonly=True) as reader:
        jobs = {j.job_id: j for j in reader.jobs()}
    with Ledger.open(run_dir) as writer:
        assert {j.job_id: j for j in writer.jobs()} == jobs
    assert sorted(jobs) == [f"j{i:04d}" for i in range(1, 6)]
    for job_id, job in jobs.items():
        # Every update the child reported (it prints after the call returned) is on disk; one more
        # may have committed before the kill, never half of one.
        assert job.polls >= last_committed[job_id]
        assert job.progress == job.polls % 101 and job.status == "in_progress"


# ---------------------------------------------------------------------- telling a change (ledger_version)

_OTHER_WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    for line in sys.stdin:  # one commit, then a checkpoint that empties the WAL, at each line
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('other', ?)", (line.strip(),))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print("done", flush=True)
    """
)


@pytest.mark.slow
def test_the_version_changes_at_each_commit_of_another_process_followed_by_a_checkpoint(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A checkpoint that empties the WAL resets the WAL index (frame count 0, new salts) and writes the
    ledger file in place, keeping its size: a commit of another process hidden by such a checkpoint
    must still change the version, 30 times out of 30, and nothing else may."""
    from sora_nb._ledger import ledger_version

    ledger.add_job(record(1))
    run_dir = ledger.run_dir
    other = subprocess.Popen(
        [sys.executable, "-c", _OTHER_WRITER, str(run_dir / LEDGER_FILE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert other.stdin is not None and other.stdout is not None
    seen = [ledger_version(run_dir, ledger)]
    try:
        for n in range(30):
            other.stdin.write(f"{n % 2}\n")  # the same two values again and again: same sizes, same pages
            other.stdin.flush()
            assert other.stdout.readline() == "done\n"
            seen.append(ledger_version(run_dir, ledger))
            assert seen[-1] == ledger_version(run_dir, ledger)  # unchanged: equal
    finally:
        other.stdin.close()
        other.wait(timeout=30)
        other.stdout.close()
    assert (run_dir / f"{LEDGER_FILE}-wal").stat().st_size == 0  # the checkpoints did empty the WAL
    assert len(set(seen)) == 31, seen
    assert ledger.meta()["other"] == 1


def test_the_version_changes_at_each_own_commit_and_each_write_of_another_connection(ledger: Ledger) -> None:
    from sora_nb._ledger import ledger_version

    run_dir = ledger.run_dir
    before = ledger_version(run_dir, ledger)
    ledger.add_job(record(1))
    own = ledger_version(run_dir, ledger)
    with Ledger.open(run_dir) as other:  # another connection, as another process's would be
        other.update_job("j0001-abcd", progress=5)
    assert len({before, own, ledger_version(run_dir, ledger)}) == 3
    assert ledger_version(run_dir, ledger) == ledger_version(run_dir, ledger)


def test_taking_the_version_keeps_the_write_lock_of_this_process_s_transaction(ledger: Ledger) -> None:
    """Closing a second descriptor of a SQLite file drops every POSIX lock the process holds on it: the
    version read the WAL index (``-shm``) by opening it, and another process then took the write lock
    while this one was writing -- two writers in one WAL."""
    from sora_nb._ledger import ledger_version

    probe = ("import sqlite3, sys\nconn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
             "try:\n    conn.execute('BEGIN IMMEDIATE')\n    print('took the write lock')\n"
             "except sqlite3.OperationalError as exc:\n    print(exc)\n")
    ledger.add_job(record(1))
    with ledger.transaction() as conn:
        conn.execute("UPDATE jobs SET polls = 1")
        ledger_version(ledger.run_dir, ledger)
        ledger_version(ledger.run_dir, None)  # as when this process's runner has closed its ledger
        answer = subprocess.run([sys.executable, "-c", probe, str(ledger.run_dir / LEDGER_FILE)],
                                capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "database is locked", answer


def test_without_a_connection_a_ledger_changed_within_a_clock_tick_is_never_taken_as_unchanged(
    ledger: Ledger,
) -> None:
    """Times alone: a second commit in the tick of the first keeps the file's time and size. A ledger
    changed within the coarsest tick (2 s) of now has no settled version; once settled, any change moves
    its time."""
    from sora_nb._ledger import RACY_WINDOW_NS, ledger_version

    ledger.add_job(record(1))
    run_dir = ledger.run_dir
    now = max((run_dir / name).stat().st_mtime_ns for name in (LEDGER_FILE, f"{LEDGER_FILE}-wal"))
    assert ledger_version(run_dir, None, now_ns=now) != ledger_version(run_dir, None, now_ns=now)
    settled = now + RACY_WINDOW_NS
    assert ledger_version(run_dir, None, now_ns=settled) == ledger_version(run_dir, None, now_ns=settled)


# ---------------------------------------------------------------------- schema version


def test_a_ledger_from_a_newer_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    Ledger.create(tmp_path, meta={}).close()
    with sqlite3.connect(tmp_path / LEDGER_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(SoraError, match=r"newer sora_nb.*pip install -U sora-nb"):
            Ledger.open(tmp_path, readonly=readonly)


def test_a_sqlite_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / LEDGER_FILE).close()
    with pytest.raises(SoraError, match="not a sora_nb run ledger"):
        Ledger.open(tmp_path)


def test_the_schema_has_a_column_per_field_and_the_remote_id_index(ledger: Ledger) -> None:
    columns = [row[1] for row in ledger._conn.execute("PRAGMA table_info(jobs)")]
    fields = [f.name for f in dataclasses.fields(JobRecord)]
    assert columns == [*fields, "prompt", "model", "size", "seconds", "style"]
    indexes = {row[1] for row in ledger._conn.execute("PRAGMA index_list(jobs)")}
    assert "jobs_remote_id" in indexes
    assert ledger._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_remote_id_belongs_to_one_job(ledger: Ledger) -> None:
    ledger.add_jobs([record(1), record(2)])
    ledger.update_job("j0001-abcd", remote_id="video_1", create_state="acked")
    with pytest.raises(ValueError, match="already belongs to another job"):
        ledger.update_job("j0002-abcd", remote_id="video_1", create_state="acked")
    assert ledger.get_job("j0002-abcd").remote_id is None  # refused whole
    with pytest.raises(ValueError, match="remote_id"):
        ledger.add_job(record(3, remote_id="video_1"))


def test_a_remote_id_belongs_to_one_job_of_each_backend(tmp_path: Path) -> None:
    """Two servers of a pool may give out one id, each for its own video (a version-4 ledger refused the second
    backend's claim, failing a job whose video was made and paid for): upgraded, both are kept; one backend's id
    is still refused for a second job of that backend."""
    with Ledger.create(tmp_path, meta={}) as made:
        made.add_jobs([record(1, backend="a"), record(2, backend="b"), record(3, backend="b")])
    conn = sqlite3.connect(tmp_path / LEDGER_FILE)
    with conn:  # as version 4 wrote it
        conn.execute("DROP INDEX jobs_remote_id")
        conn.execute("CREATE UNIQUE INDEX jobs_remote_id ON jobs (remote_id)")
        conn.execute("PRAGMA user_version = 4")
    conn.close()
    with Ledger.open(tmp_path) as ledger:
        ledger.update_job("j0001-abcd", remote_id="video_1", create_state="acked")
        ledger.update_job("j0002-abcd", remote_id="video_1", create_state="acked")
        with pytest.raises(ValueError, match="already belongs to another job"):
            ledger.update_job("j0003-abcd", remote_id="video_1", create_state="acked")
        assert [(r.backend, r.remote_id) for r in ledger.jobs()] == [("a", "video_1"), ("b", "video_1"), ("b", None)]


def _version_1(run_dir: Path, remote_ids: list[str | None]) -> None:
    """A ledger as sora_nb wrote it before remote ids were unique (a plain index, user_version 1)."""
    with Ledger.create(run_dir, meta={}) as old:
        old.add_jobs([record(seq) for seq in range(1, len(remote_ids) + 1)])
    conn = sqlite3.connect(run_dir / LEDGER_FILE)
    with conn:
        conn.execute("DROP INDEX jobs_remote_id")
        conn.execute("CREATE INDEX jobs_remote_id ON jobs (remote_id)")
        for seq, remote_id in enumerate(remote_ids, 1):
            conn.execute("UPDATE jobs SET remote_id = ? WHERE seq = ?", (remote_id, seq))
        conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_a_version_1_ledger_is_upgraded_in_place_to_unique_remote_ids(tmp_path: Path) -> None:
    _version_1(tmp_path, ["video_1", None, None])
    with Ledger.open(tmp_path, readonly=True) as reader:  # readers never change the file
        assert reader._conn.execute("PRAGMA user_version").fetchone()[0] == 1
    with Ledger.open(tmp_path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        with pytest.raises(ValueError, match="already belongs"):
            upgraded.update_job("j0002-abcd", remote_id="video_1")


def test_a_version_1_ledger_that_already_shares_a_remote_id_opens_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _version_1(tmp_path, ["video_1", "video_1", None])
    with Ledger.open(tmp_path) as kept:
        assert [r.remote_id for r in kept.jobs()] == ["video_1", "video_1", None]
        assert kept._conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "several rows" in caplog.text and "sora-nb audit" in caplog.text


def test_a_version_3_ledger_reads_without_backends_and_gains_the_column_when_written(tmp_path: Path) -> None:
    """Runs made before pools (schema 3) have no ``backend`` column: readers see ``None``, a writer adds it."""
    _version_1(tmp_path, ["video_1", None])
    conn = sqlite3.connect(tmp_path / LEDGER_FILE)
    with conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN backend")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    with Ledger.open(tmp_path, readonly=True) as reader:
        assert [r.backend for r in reader.jobs()] == [None, None]
        assert reader.get_job("j0001-abcd").remote_id == "video_1"
    with Ledger.open(tmp_path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        upgraded.update_job("j0002-abcd", backend="spare")
        assert [r.backend for r in upgraded.jobs()] == [None, "spare"]


# ---------------------------------------------------------------------- no keys in the ledger

KEY = "sk-proj-abcdefghijklmnop1234"


@pytest.mark.parametrize(
    "meta",
    [
        {"api_key": "abc123"},
        {"headers": {"Authorization": f"Bearer {KEY}"}},
        {"base_url": "https://relay.example/v1?api_key=abc123"},
        {"note": KEY},
    ],
)
def test_meta_that_looks_like_a_key_is_refused(tmp_path: Path, meta: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="API key") as info:
        Ledger.create(tmp_path / "a", meta=meta)
    assert KEY not in str(info.value) and "abc123" not in str(info.value)  # the message never echoes it
    assert not (tmp_path / "a" / LEDGER_FILE).exists()

    with Ledger.create(tmp_path / "b", meta={}) as led:
        with pytest.raises(ValueError, match="API key"):
            led.set_meta(**meta)
        assert set(led.meta()) == {"run_id", "created_at"}


def test_a_job_that_carries_a_key_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="API key"):
        ledger.add_job(record(1, spec=spec(f"a corgi {KEY}")))
    with pytest.raises(ValueError, match="API key"):
        ledger.add_job(record(1, spec=spec(axes={"token": "abc123"})))
    assert ledger.jobs() == []
    ledger.add_job(record(1))
    with pytest.raises(ValueError, match="API key"):
        ledger.update_job("j0001-abcd", video_path=f"videos/{KEY}.mp4")


def test_error_text_from_the_server_is_scrubbed_not_refused(ledger: Ledger) -> None:
    ledger.add_job(record(1))
    ledger.update_job("j0001-abcd", status="failed", error_code="invalid_api_key",
                      error_message=f"Incorrect API key provided: {KEY}.")  # fmt: skip
    stored = ledger.get_job("j0001-abcd")
    assert stored.status == "failed" and stored.error_message is not None
    assert KEY not in stored.error_message and "REDACTED" in stored.error_message
    raw = (ledger.run_dir / LEDGER_FILE).read_bytes() + (ledger.run_dir / f"{LEDGER_FILE}-wal").read_bytes()
    assert KEY.encode() not in raw


def test_an_ordinary_prompt_with_a_colon_is_accepted(ledger: Ledger) -> None:
    ledger.add_job(record(1, spec=spec("a horse: galloping on the beach")))


# ---------------------------------------------------------------------- runs on disk


def test_new_run_ids_sort_by_time_and_differ() -> None:
    assert new_run_id(1_795_000_000.0).startswith("20261118-")
    assert new_run_id(1.0) < new_run_id(2_000_000_000.0)
    assert len({new_run_id(0.0) for _ in range(20)}) > 1
    assert len(new_run_id()) == len("20261121-234501-a1b2")


def test_list_runs_counts_jobs_by_status(tmp_path: Path) -> None:
    root = tmp_path / "sora_runs"
    with Ledger.create(root / "b-run", meta={"profile": "openai-compatible", "created_at": 2000.0}) as led:
        led.add_jobs([record(1), record(2), record(3)])
        led.update_job("j0001-abcd", status="completed")
        led.update_job("j0002-abcd", status="completed")
    Ledger.create(root / "a-run", meta={"profile": "simulator", "created_at": 1000.0}).close()
    (root / "not-a-run").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / LEDGER_FILE).write_bytes(b"this is not sqlite at all" * 10)

    runs = list_runs(root)
    assert [r.run_dir.name for r in runs] == ["broken", "a-run", "b-run"]  # unreadable first, then by time
    broken, a, b = runs
    assert broken.error and broken.total == 0
    assert (a.run_id, a.profile, a.created_at, a.counts, a.error) == ("a-run", "simulator", 1000.0, {}, None)
    assert b.counts == {"completed": 2, "pending_submit": 1} and b.total == 3
    assert "b-run" in str(b) and "2 completed" in str(b) and "unreadable" in str(broken)

    assert list_runs(root / "b-run") == [b]  # a run directory lists itself
    assert list_runs(tmp_path / "missing") == []
    assert isinstance(runs[0], RunSummary)


def test_list_runs_reads_while_a_writer_is_open(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "r", meta={"profile": "simulator"}) as led:
        led.add_job(record(1))
        assert list_runs(tmp_path)[0].counts == {"pending_submit": 1}
        led.update_job("j0001-abcd", status="queued")
        assert list_runs(tmp_path)[0].counts == {"queued": 1}


def test_a_write_that_could_not_begin_leaves_the_next_commits_synced(ledger: Ledger) -> None:
    # Attack: a batch of non-durable writes (poll counts) whose transaction cannot begin (another process
    # holds the write lock past the busy timeout) must not leave the connection at synchronous=NORMAL,
    # or every later "sending" row is committed without a sync (lost in a power cut: paid twice on resume).
    ledger.add_jobs([record(1)])
    ledger._conn.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(ledger.run_dir / LEDGER_FILE, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ledger.update_job("j0001-abcd", polls=1, durable=False)
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert ledger._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


# ---------------------------------------------------------------------- the writer thread


def test_writes_waiting_together_are_one_commit_and_none_is_done_before_it(ledger: Ledger) -> None:
    ledger.add_jobs([record(seq) for seq in range(1, 51)])
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    with ledger._lock:  # a commit in progress (a slow disk): the writer thread waits for it
        futures = [ledger.update_job_soon(f"j{seq:04d}-abcd", status="queued") for seq in range(1, 51)]
        assert not any(f.done() for f in futures)  # not committed: nobody may act on them yet
        with Ledger.open(ledger.run_dir, readonly=True) as reader:
            assert {r.status for r in reader.jobs()} == {"pending_submit"}
    for future in futures:
        assert future.result(timeout=10) is None
    ledger._conn.set_trace_callback(None)
    # 50 transitions waiting together: one or two transactions (the writer may have taken the first
    # alone), not 50 disk syncs.
    assert 1 <= statements.count("COMMIT") <= 2
    with Ledger.open(ledger.run_dir, readonly=True) as reader:
        assert {r.status for r in reader.jobs()} == {"queued"}


def test_a_refused_write_fails_alone_and_the_others_of_its_commit_stay(ledger: Ledger) -> None:
    ledger.add_jobs([record(1), record(2), record(3)])
    ledger.update_job("j0001-abcd", remote_id="video_1")
    with ledger._lock:
        claimed_twice = ledger.update_job_soon("j0002-abcd", remote_id="video_1")
        missing = ledger.update_job_soon("j0009-abcd", status="queued")
        fine = ledger.update_job_soon("j0003-abcd", remote_id="video_3", status="queued")
    with pytest.raises(ValueError, match="already belongs to another job"):
        claimed_twice.result(timeout=10)
    with pytest.raises(KeyError):
        missing.result(timeout=10)
    assert fine.result(timeout=10) is None
    rows = {r.job_id: r for r in ledger.jobs()}
    assert rows["j0002-abcd"].remote_id is None
    assert (rows["j0003-abcd"].remote_id, rows["j0003-abcd"].status) == ("video_3", "queued")


def test_a_write_cancelled_before_the_writer_takes_it_is_not_written(ledger: Ledger) -> None:
    ledger.add_jobs([record(1)])
    with ledger._lock:
        first = ledger.update_job_soon("j0001-abcd", status="queued")
        second = ledger.update_job_soon("j0001-abcd", status="in_progress")
        # The writer may already hold the first; the second is certainly still waiting.
        assert second.cancel()
    first.result(timeout=10)
    ledger.update_job("j0001-abcd", progress=5)  # after both, in order
    assert (ledger.get_job("j0001-abcd").status, ledger.get_job("j0001-abcd").progress) == ("queued", 5)


def test_values_are_checked_when_handed_over_not_later(ledger: Ledger) -> None:
    ledger.add_jobs([record(1)])
    with pytest.raises(ValueError, match="is not one of"):
        ledger.update_job_soon("j0001-abcd", status="done")
    with pytest.raises(ValueError, match="fields:"):
        ledger.update_job_soon("j0001-abcd", colour="red")


def test_a_write_sqlite_cannot_bind_fails_alone_and_the_others_of_its_commit_stay(ledger: Ledger) -> None:
    # Attack: one write whose value SQLite refuses at bind time (an int beyond 64 bits raises OverflowError,
    # a value of a type it cannot store raises ProgrammingError) sharing a commit with other jobs' writes.
    ledger.add_jobs([record(1), record(2), record(3)])
    with ledger._queue_lock:  # the writer thread cannot take any of them until all three wait: one commit
        before = ledger.update_job_soon("j0001-abcd", status="queued")
        too_big = ledger.update_job_soon("j0002-abcd", progress=2**70)
        after = ledger.update_job_soon("j0003-abcd", status="in_progress")
    with pytest.raises(OverflowError):
        too_big.result(timeout=10)
    assert before.result(timeout=10) is None
    assert after.result(timeout=10) is None
    assert [(r.status, r.progress) for r in ledger.jobs()] == [("queued", None), ("pending_submit", None),
                                                              ("in_progress", None)]
