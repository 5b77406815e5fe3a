"""Red-team attacks on issue 9's promises that tests/test_faults.py does not make: a lock file deleted
while its run is driven, a server whose list pages in a circle, an audit that would delete another run's
videos, ... Each counts at the server (its audit of accepted creates, or the requests it saw).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import FAST_POLLS, TEST_KEY, LoopbackSimulator, child_env, ledger_rows, loopback_simulators, stop
from support import no_sleep, wait_for
from test_faults import DRIVER, HostileGateway, SmallDisk, _answer, _served, start_sweep, wait_error
from test_faults import small_disk as small_disk  # a fixture, used by name

import sora_nb
from sora_nb._runlock import LOCK_FILE
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

FAST = 0.004


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Callable[..., LoopbackSimulator]]:
    with loopback_simulators(tmp_path) as start:
        yield start


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)


# ---------------------------------------------------------------------- one driver, whatever happens to its file
RESUME = textwrap.dedent("""
    import json, sys
    import sora_nb

    try:
        run = sora_nb.resume(sys.argv[1])
    except Exception as exc:
        print(json.dumps({"refused": type(exc).__name__}), flush=True)
        raise SystemExit(0)
    run.wait(timeout=60)
    print(json.dumps({"drove": run.counts()}), flush=True)
    run.close()
""")


def _resume_elsewhere(run_dir: Path) -> dict[str, Any]:
    """``sora_nb.resume(run_dir)`` in another process: what it did."""
    resumer = subprocess.Popen([sys.executable, "-c", RESUME, str(run_dir)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=child_env(), cwd=run_dir.parent)
    out, err = stop(resumer, timeout=90)
    assert out.strip(), err
    outcome: dict[str, Any] = json.loads(out.splitlines()[-1])
    return outcome


@pytest.mark.slow
def test_a_lock_file_deleted_or_replaced_while_held_still_keeps_a_second_driver_out(
    loopback: Callable[..., LoopbackSimulator], tmp_path: Path
) -> None:
    """A user who takes ``driver.lock`` for a stale lock file removes it (or a sync tool replaces it) while
    the run is driven. Before: the next ``sora_nb.resume`` made a new file, locked it and drove the run too
    (6 jobs, 11 creates at the server). Now the lock is the run directory's own: the resumer is refused."""
    sim = loopback("--time-scale", "0.02")
    run_dir = tmp_path / "run"
    jobs = 4
    with sora_nb.connect("openai-compatible", base_url=sim.base_url, run_root=tmp_path,
                         poll_policy=FAST_POLLS) as client:
        run = client.sweep(prompt=[f"held lock {i}" for i in range(jobs)]).start(max_concurrency=1,
                                                                                run_dir=run_dir)
        wait_for(lambda: len(sim.audit()) >= 1, what="the first create")
        (run_dir / LOCK_FILE).unlink()
        deleted = _resume_elsewhere(run_dir)
        (run_dir / LOCK_FILE).write_text("{}")  # replaced by another file
        replaced = _resume_elsewhere(run_dir)
        run.wait(timeout=90)
    assert len(sim.audit()) == jobs
    assert run.counts() == {"completed": jobs}
    assert deleted == replaced == {"refused": "RunLockedError"}
    assert sorted(row.remote_id or "" for row in ledger_rows(run_dir)) == sorted(e["id"] for e in sim.audit())


# ---------------------------------------------------------------------- a list that lies
class LyingList:
    """A Videos API whose creates make the job and answer 502; its list is hostile in the way ``lie`` says.

    ``cycle``: pages of strangers' jobs (made just now) whose cursors go round in a circle A -> B -> A.
    ``empty``: ``has_more`` forever with no data, each page with a new cursor.
    ``truncated``, ``no id``: an honest list, but each create answers 200 with a body cut short (or without
    the job's id), as a proxy that drops the connection mid-answer or rewrites it would.
    ``slow_clock``: an honest list, but the server's clock is ``behind`` seconds behind (its ``Date`` header
    and every ``created_at`` say so).
    """

    def __init__(self, lie: str, behind: float = 0.0) -> None:
        self.lie, self.behind = lie, behind
        self.created: list[dict[str, Any]] = []
        self.list_calls = 0

    def now(self) -> float:
        return time.time() - self.behind

    def __call__(self, request: httpx.Request) -> httpx.Response:
        date = {"date": email.utils.formatdate(self.now(), usegmt=True)}
        if request.method == "POST":
            body = json.loads(request.content)
            self.created.append(_video(f"video_made{len(self.created)}", int(self.now()), body["prompt"]))
            if self.lie in ("truncated", "no id"):  # made, and answered 200 with what cannot be read
                answer = b'{"id": "video_ma' if self.lie == "truncated" else b'{"object": "video"}'
                return httpx.Response(200, content=answer, headers={**date, "content-type": "application/json"})
            return httpx.Response(502, json={"error": {"message": "Bad Gateway"}}, headers=date)
        self.list_calls += 1
        if self.list_calls > 1000:  # 100,000 strangers read: it would go on forever (and never yields)
            raise AssertionError("the client walked the list forever")
        after = request.url.params.get("after")
        if self.lie == "cycle":
            strangers = [_video(f"video_{after or 'A'}{i}", int(self.now()), "not yours") for i in range(100)]
            return httpx.Response(200, headers=date, json={
                "object": "list", "data": strangers, "has_more": True, "last_id": "B" if after == "A" else "A"})
        if self.lie == "empty":
            return httpx.Response(200, headers=date, json={
                "object": "list", "data": [], "has_more": True, "last_id": f"cursor{self.list_calls}"})
        return httpx.Response(200, headers=date, json={
            "object": "list", "data": list(reversed(self.created)), "has_more": False})


def _video(video_id: str, created_at: int, prompt: str) -> dict[str, Any]:
    return {"id": video_id, "object": "video", "status": "queued", "model": "sora-2", "prompt": prompt,
            "seconds": "4", "size": "720x1280", "progress": 0, "created_at": created_at}


async def _create_against(server: LyingList) -> Any:
    async with sora_nb.ContractClient(base_url="http://lying.test/v1", api_key=TEST_KEY, sleep=no_sleep,
                                      transport=httpx.MockTransport(server)) as api:
        return await asyncio.wait_for(api.create(prompt="a fox", seconds="4"), timeout=10)


@pytest.mark.parametrize("lie", ["cycle", "empty"])
def test_a_list_that_pages_forever_leaves_the_create_ambiguous_not_hung(lie: str) -> None:
    """Before: a list whose cursors go round in a circle (A, B, A, ...), or that says ``has_more`` with empty
    pages and a new cursor each time, was walked forever: the create never ended (the server stops it at
    1,000 pages). Now the walk stops at the first cursor it has seen before (or an
    empty page that says it has more) and the create is ambiguous, sent once."""
    server = LyingList(lie)
    with pytest.raises(sora_nb.AmbiguousCreateError, match=r"could not be searched.*cursor") as info:
        asyncio.run(_create_against(server))
    assert len(server.created) == 1 and server.list_calls <= 4
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("lie", ["truncated", "no id"])
def test_a_create_answered_200_with_an_unreadable_body_is_looked_for_not_failed(lie: str) -> None:
    """HTTP 200 says the server took the create (and billed it), but its body cannot be read. Before: the job
    ended ``failed`` ("not valid JSON"), the advice and the sweep's Retry failed sending it again: 2 creates for
    1 job. Now it is a lost answer like any other: looked for, found and adopted, 1 create."""
    server = LyingList(lie)
    video = asyncio.run(_create_against(server))
    assert [job["id"] for job in server.created] == [video.id]


def test_a_server_whose_clock_is_behind_gets_its_lost_create_adopted_not_sent_again() -> None:
    """The server's clock is 10 minutes behind ours (its ``Date`` and ``created_at`` say so). Before: the job
    its 502 hid was listed with a ``created_at`` older than the window, so the walk stopped before it, "proved"
    it absent and sent the create again: 6 creates, each hidden the same way. Now the window is read in the
    server's clock (from its ``Date``): the job is adopted, 1 create."""
    server = LyingList("honest", behind=600)
    video = asyncio.run(_create_against(server))
    assert [job["id"] for job in server.created] == [video.id]


# ---------------------------------------------------------------------- an audit that deletes what it should not
def test_audit_never_offers_to_delete_a_video_that_another_run_claims(tmp_path: Path) -> None:
    """The user runs the same cell twice: two runs with the same prompt, a minute apart. Before: the first
    run's audit listed the second run's video as an orphan of its own ("paid but not recorded") and
    ``delete_orphans()`` deleted it on the server, under a completed row of the other run. Now a video that a
    run under the same root claims is no orphan; a true orphan still is."""
    transport = SimulatorTransport(SimulatorConfig(seed=4, time_scale=FAST, max_side=32, fps=4))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        first = client.sweep(prompt=["the same cell"]).start(run_dir=tmp_path / "first")
        first.wait(timeout=60)
        second = client.sweep(prompt=["the same cell"]).start(run_dir=tmp_path / "second")
        second.wait(timeout=60)
        stray = client.call(lambda api: api.create(prompt="the same cell", seconds="4"))
        report = first.audit()
        assert [orphan.id for orphan in report.orphans] == [stray.id]
        assert report.delete_orphans() == [stray.id]
        (theirs,) = second.jobs
        assert client.call(lambda api: api.retrieve(theirs.remote_id or "")).status == "completed"
        assert first.audit().ok and second.audit().ok
    assert len(transport.audit()) == 3


class _AliasingGateway(httpx.AsyncBaseTransport):
    """A gateway whose list shows its jobs under other ids than its creates returned (``alias_<id>``), and
    that takes either id on every other route, as gateways that rewrite ids do."""

    def __init__(self) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=6, time_scale=FAST, max_side=32, fps=4))
        self.deleted: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.replace("/alias_", "/")
        if request.method == "DELETE":
            self.deleted.append(path.rsplit("/", 1)[-1])
        inner = httpx.Request(request.method, request.url.copy_with(path=path), headers=request.headers,
                              content=await request.aread())
        response = await self.inner.handle_async_request(inner)
        if request.method == "GET" and path == "/v1/videos" and response.status_code == 200:
            body = json.loads(await response.aread())
            for video in body["data"]:
                video["id"] = "alias_" + video["id"]
            return httpx.Response(200, json=body, headers={"date": response.headers.get("date", "")})
        return response


def test_audit_refuses_to_delete_orphans_when_the_list_hides_the_runs_own_ids(tmp_path: Path) -> None:
    """Under ``openai-compatible``, a gateway whose list rewrites ids: before, every video of the run was an
    "orphan" (paid, never recorded) and ``delete_orphans()`` deleted the run's own 2 completed videos. Now the
    audit says it cannot tell orphans from the run's own jobs, and deleting is refused: 0 deleted."""
    gateway = _AliasingGateway()
    with sora_nb.connect("openai-compatible", base_url="http://gateway.test/v1", api_key=TEST_KEY,
                         run_root=tmp_path, transport=gateway, poll_policy=FAST_POLLS) as client:
        run = client.sweep(prompt=["a fox", "an owl"]).start()
        assert run.wait(timeout=60).counts() == {"completed": 2}
        report = run.audit()
        assert not report.ok and not report.listed
        assert "does not show 2 of the run's own 2 job(s)" in (report.cannot_check or "")
        with pytest.raises(sora_nb.SoraError, match="cannot be told from the run's own"):
            report.delete_orphans()
    assert gateway.deleted == []
    assert len(gateway.inner.audit()) == 2


# ---------------------------------------------------------------------- "Retry failed" after a refused download
def test_retry_failed_after_a_refused_download_does_not_pay_again_for_videos_the_server_made(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """The videos directory turns read-only: 3 jobs made (and billed) on the server end failed with
    ``storage_error``; the user makes it writable and presses the sweep's "Retry failed"
    (``run.retry_failed()``). Before: 3 new creates, 6 paid for 3 videos. Now those jobs are not retried
    (the refusal says resume downloads them) and resume finishes them with no create."""
    jobs = 3
    server = SimulatorTransport(SimulatorConfig(seed=10, time_scale=0.01))
    run_dir = small_disk.path / "run"
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        run = start_sweep(client, run_dir, [f"a refused download {i}" for i in range(jobs)])
        small_disk.read_only(True, run_dir / "videos")
        assert isinstance(wait_error(run), sora_nb.StorageError)
        assert all(job.remote_id for job in run) and run.counts() == {"failed": jobs}
        small_disk.read_only(False, run_dir / "videos")
        assert run.retry_failed() == []
        with pytest.raises(ValueError, match=r"may already be made.*sora_nb\.resume\("):
            run.jobs[0].retry()
        assert len(server.audit()) == jobs
        resumed = sora_nb.resume(run_dir, client=client)
        assert resumed.wait(timeout=60).counts() == {"completed": jobs}
    assert len(server.audit()) == jobs


# ---------------------------------------------------------------------- a server that writes a novel
HUGE = 1_000_000


def _novelist(request: httpx.Request) -> httpx.Response:
    """Fails every job with a 1 MB ``error.message`` (the key at its end), and a create of "refused" with a
    1 MB 400 message: a proxy that pastes a whole page into the error, or a hostile one."""
    novel = "m" * HUGE + " " + request.headers["authorization"]
    if request.method == "POST":
        if b"refused" in request.content:
            return httpx.Response(400, json={"error": {"message": novel, "code": novel, "param": novel}})
        return httpx.Response(200, json=_video("video_novel", int(time.time()), "a novel"))
    return httpx.Response(200, json={**_video("video_novel", int(time.time()), "a novel"), "status": "failed",
                                     "error": {"code": "moderation_blocked", "message": novel}})


def test_a_megabyte_error_message_from_the_server_is_clipped_before_the_ledger_card_and_exception(
    tmp_path: Path,
) -> None:
    """Before: a server's 1 MB ``error.message`` went whole into the ledger (1.07 MB of WAL), the DataFrame
    (2 MB as text), the job card's HTML (1 MB, saved in the notebook) and ``JobFailedError``; a 400's 1 MB
    message into the exception, three times over (message, code, param). Now each is clipped to a few KB,
    the key is gone from all of them, and the clip says how much was left out."""
    with sora_nb.connect("openai-compatible", base_url="http://novelist.test/v1", run_root=tmp_path,
                         transport=httpx.MockTransport(_novelist), poll_policy=FAST_POLLS) as client:
        run = client.sweep(prompt=["a novel", "refused"]).start(run_dir=tmp_path / "run")
        run.wait(timeout=30)
        failed, refused = run.jobs
        shown = {
            "failed": failed.error.message if failed.error else "",
            "refused": " ".join(str(v) for v in vars(refused.error).values()) if refused.error else "",
            "card": failed._repr_html_() + refused._repr_html_(),
            "df": run.to_dataframe().to_csv(),
        }
        for job in run.jobs:
            with pytest.raises(sora_nb.JobFailedError) as info:
                job.wait(timeout=1)
            shown[f"{job.prompt} exception"] = str(info.value)
    assert {name: len(text) for name, text in shown.items() if len(text) > 40_000} == {}
    shown["ledger"] = "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "run").glob("ledger*"))
    assert len(shown["ledger"]) < 200_000  # the WAL and its pages, not a megabyte of the server's text
    assert [name for name, text in shown.items() if TEST_KEY in text] == []
    assert "more characters" in shown["failed"]


# ---------------------------------------------------------------------- a disk that refuses only the posters
def test_a_disk_that_refuses_only_the_posters_completes_no_job_without_one_and_resume_finishes(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """Only ``thumbnails/`` is read-only (the videos save fine): no job is ``completed`` without its poster,
    each ends ``storage_error``; made writable, resume finishes them with no create (held: 3 creates for 3)."""
    jobs = 3
    server = SimulatorTransport(SimulatorConfig(seed=12, time_scale=0.01))
    run_dir = small_disk.path / "run"
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        run = start_sweep(client, run_dir, [f"a poster refused {i}" for i in range(jobs)])
        (run_dir / "thumbnails").mkdir(exist_ok=True)
        small_disk.read_only(True, run_dir / "thumbnails")
        assert isinstance(wait_error(run), sora_nb.StorageError)
        assert {(job.status, job.error.code if job.error else None) for job in run} == {("failed", "storage_error")}
        small_disk.read_only(False, run_dir / "thumbnails")
        resumed = sora_nb.resume(run_dir, client=client)
        assert resumed.wait(timeout=60).counts() == {"completed": jobs}
        assert all(job._record.thumbnail_path and (run_dir / job._record.thumbnail_path).is_file() for job in resumed)
    assert len(server.audit()) == jobs


# ---------------------------------------------------------------------- SIGKILL while creates are on the wire
@pytest.mark.slow
def test_sigkill_while_creates_are_on_the_wire_then_two_resumes_in_a_row_pay_once_per_job(tmp_path: Path) -> None:
    """The gateway makes each job upstream and holds its answer 3 s; the driver is SIGKILLed while two
    creates are on the wire (made, not recorded). Two resumes in a row, each closed before the next: the first
    finds both on the server and adopts them, the second sends nothing (held: 4 creates for 4 jobs)."""
    app = HostileGateway(SimulatorConfig(seed=3, time_scale=FAST, max_side=32, fps=4))
    app.create_delay = 3.0
    jobs = 4
    run_dir = tmp_path / "run"
    with _served(app) as origin:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, f"{origin}/v1", str(run_dir), str(jobs)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                                  cwd=tmp_path)
        try:
            wait_for(lambda: len(app.audit()) == 2, what="two creates on the wire")
            driver.kill()
            driver.wait(timeout=10)
        finally:
            stop(driver)
        assert [row.remote_id for row in ledger_rows(run_dir)] == [None] * jobs  # made, never recorded
        app.create_delay = 0.0
        for _ in range(2):
            resumed = sora_nb.resume(run_dir)
            try:
                assert resumed.wait(timeout=60).counts() == {"completed": jobs}
            finally:
                resumed.close()
        assert len(app.audit()) == jobs
        assert sorted(row.remote_id or "" for row in ledger_rows(run_dir)) == sorted(e["id"] for e in app.audit())


# ---------------------------------------------------------------------- a lost create and another run's video
class FailsOnce(HostileGateway):
    """The next create fails before it is forwarded (502, nothing made upstream); later ones go through."""

    fail_next = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.fail_next and scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/videos":
            self.fail_next = False
            return await _answer(send, 502, {"error": {"message": "Bad Gateway"}})
        return await super().__call__(scope, receive, send)


@pytest.mark.slow
def test_a_lost_create_never_adopts_the_video_of_another_run_under_the_same_root(tmp_path: Path) -> None:
    """Two notebooks, the same prompt: the second one's create fails at the gateway before it is forwarded
    (nothing made), and its search finds the first notebook's video (same prompt, in the window, unclaimed
    by the second run). Before: adopted; two runs held one video, 1 create for 2 jobs. Now a video another
    run under the root claims is not a candidate: proven absent, the create is sent again, 2 videos."""
    app = FailsOnce(SimulatorConfig(seed=3, time_scale=FAST, max_side=32, fps=4))
    with _served(app) as origin:
        with sora_nb.connect("openai-compatible", base_url=f"{origin}/v1", run_root=tmp_path,
                             poll_policy=FAST_POLLS) as first:
            mine = first.sweep(prompt=["the same prompt"]).start(run_dir=tmp_path / "first").wait(timeout=60)
        app.fail_next = True
        with sora_nb.connect("openai-compatible", base_url=f"{origin}/v1", run_root=tmp_path,
                             poll_policy=FAST_POLLS) as second:
            second.api.list_settle = 0.05
            theirs = second.sweep(prompt=["the same prompt"]).start(run_dir=tmp_path / "second").wait(timeout=60)
            assert theirs.counts() == {"completed": 1}
    assert len(app.audit()) == 2
    assert mine.jobs[0].remote_id != theirs.jobs[0].remote_id
