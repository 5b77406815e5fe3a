"""The fault suite: each of the promises "never pays twice" and "never adopts the wrong video" attacked on
loopback servers the test starts itself, with the figures counted at the server (its audit of accepted
creates) and in the run's ledger.

Ambiguity (a, b): a create whose answer is lost is re-sent only when a search that worked proved it absent;
otherwise the job is ``ambiguous``, never re-sent. Claims (c): a remote id belongs to one job, repeats never
share a video, and ``run.audit()`` reports every accepted create no row claims. The storm (d) puts it all
together across a SIGKILL and ``sora_nb.resume``.

Server data is data (e): a server's ids never name a local file, and a hostile id ends the job with a
reason instead of reaching a URL or a path. Secrets stay out (f): a server that echoes the key and a base
URL's password into every field it can finds them in 0 places: run dir, exports, logs at DEBUG (httpx's
and httpcore's too), an executed notebook, reprs and exception text. One driver (g): two processes never
drive one run (an OS lock). Storage (h): a full or read-only disk ends every job with its reason, and resume
finishes them. Helpers shared with other fault tests live in ``fault_support.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from base64 import b64decode
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import FAST_POLLS, LoopbackSimulator, child_env, ledger_rows, loopback_simulators, stop
from support import wait_for

import sora_nb
from sora_nb._ledger import LEDGER_FILE, JobRecord, Ledger
from sora_nb._media import sha256_file
from sora_nb.simulator import SimulatorConfig, SimulatorTransport
from sora_nb.simulator._transport import _state, create_app

FAST = 0.004
QUICK = sora_nb.RetryPolicy(base=0.02, cap=0.2)
"""Backoff for servers that fail a third of all requests: the same number of retries, shorter waits."""
ASGI = Callable[[Any, Any, Any], Awaitable[None]]


# ---------------------------------------------------------------------- a hostile gateway, served for real
class HostileGateway:
    """A gateway in front of the simulator that makes the job upstream but answers badly.

    ``create_delay``: the create's answer is held this long (the job already exists upstream).
    ``create_status``: this status is answered instead of the create's; the job is made upstream first unless
    ``create_upstream`` is False (the proxy failed before forwarding).
    ``list_route``: when False, ``GET /v1/videos`` is a 404, as on gateways that only forward creates.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.inner: ASGI = create_app(config)
        self.create_delay = 0.0
        self.create_status: int | None = None
        self.create_upstream = True
        self.list_route = True

    def audit(self) -> list[dict[str, Any]]:
        return _state(self.inner).audit()  # type: ignore[arg-type]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/v1/videos" and not self.list_route:
            return await _answer(send, 404, {"error": {"message": "Not Found", "type": "invalid_request_error"}})
        if method == "POST" and path == "/v1/videos" and (self.create_status or self.create_delay):
            held: list[Any] = []

            async def hold(message: Any) -> None:
                held.append(message)

            if self.create_upstream or not self.create_status:
                await self.inner(scope, receive, hold)  # the job is made upstream
            if self.create_status:
                return await _answer(send, self.create_status, {"error": {"message": "Bad Gateway"}})
            await asyncio.sleep(self.create_delay)
            for message in held:
                await send(message)
            return None
        return await self.inner(scope, receive, send)


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


@contextmanager
def _served(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, for real sockets; yields ``http://127.0.0.1:PORT``."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", ws="none", log_config=None,
                            access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def gateway() -> Iterator[tuple[HostileGateway, str]]:
    """A :class:`HostileGateway` served by uvicorn on a free loopback port; its base URL."""
    app = HostileGateway(SimulatorConfig(seed=3, time_scale=FAST, max_side=32, fps=4))
    with _served(app) as origin:
        yield app, f"{origin}/v1"


ANY_KEY = "sk-faults-any-key"
"""The simulator, like the service, wants a key (any key): never the user's real one."""


def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ANY_KEY)


def _fast_polls() -> Any:
    from sora_nb._polling import PollPolicy

    return PollPolicy(floor=0.02, ceiling=0.5, first=0.05)


# ---------------------------------------------------------------------- (a) a slow create
@pytest.mark.slow
def test_ambiguity_a_create_answered_after_6s_is_not_cut_at_5s_and_never_sent_twice(
    gateway: tuple[HostileGateway, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a 6 s create with timeout=5 on a gateway with no list route was cut, "not found" in a list
    that failed, and sent again: 6 creates for 1 job, failed after 40 s with attempts=1. Now the create's read
    timeout suits slow gateways: 1 create, the job completes, attempts=1."""
    _no_env(monkeypatch)
    app, base_url = gateway
    app.create_delay, app.list_route = 6.0, False
    with sora_nb.connect("openai-compatible", base_url=base_url, timeout=5, run_root=tmp_path,
                         poll_policy=_fast_polls()) as client:
        job = client.generate("a slow gateway", seconds="4")
        job.wait(timeout=60)
        assert job.status == "completed" and job._record.attempts == 1
    assert len(app.audit()) == 1
    assert [row.remote_id for row in _rows(job.run.run_dir)] == [app.audit()[0]["id"]]


@pytest.mark.slow
def test_ambiguity_a_create_cut_by_its_own_timeout_is_ambiguous_or_adopted_never_resent(
    gateway: tuple[HostileGateway, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create timeout the user chose shorter than the gateway: the answer is lost. With no list route the
    job is ``ambiguous`` after 1 create (before: 6); with a list that works, it is found and adopted."""
    _no_env(monkeypatch)
    app, base_url = gateway
    app.create_delay, app.list_route = 1.5, False
    with sora_nb.connect("openai-compatible", base_url=base_url, timeout=1, create_timeout=1, run_root=tmp_path,
                         poll_policy=_fast_polls()) as client:
        job = client.generate("a slow gateway", seconds="4")
        with pytest.raises(sora_nb.JobFailedError, match=r"ambiguous: its create, sent at .* UTC"):
            job.wait(timeout=60)
        assert job.status == "ambiguous" and job._record.attempts == 1 and len(app.audit()) == 1
        assert "ReadTimeout" in job.error.message and "could not be searched" in job.error.message

        app.list_route = True
        second = client.generate("another slow one", seconds="4")
        second.wait(timeout=60)
        assert second.status == "completed" and second._record.attempts == 1
    assert [entry["id"] for entry in app.audit()][1:] == [second.remote_id]


# ---------------------------------------------------------------------- (b) a gateway that cannot be searched
@pytest.mark.slow
def test_ambiguity_b_502_without_a_list_route_is_ambiguous_then_reconcile_adopts(
    gateway: tuple[HostileGateway, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the gateway made the job, answered 502, and the 404 of its list was taken for "absent": 6
    creates for 1 job. Now: 1 create, the job ``ambiguous`` with the time it was sent and the fix; once the list
    route is back, ``run.reconcile()`` adopts the job, which then completes."""
    _no_env(monkeypatch)
    app, base_url = gateway
    app.create_status, app.list_route = 502, False
    with sora_nb.connect("openai-compatible", base_url=base_url, run_root=tmp_path,
                         poll_policy=_fast_polls()) as client:
        run = client.sweep(prompt=["a gateway that lies"]).start(run_dir=tmp_path / "run")
        run.wait(timeout=60)
        (job,) = run.jobs
        assert job.status == "ambiguous" and job.remote_id is None
        assert job._record.attempts == 1 and job._record.submitted_at is not None
        assert job.error is not None and "reconcile" in job.error.message
        assert len(app.audit()) == 1
        with pytest.raises(sora_nb.JobFailedError, match=r"ambiguous.*reconcile"):
            job.wait(timeout=1)
        row = run.to_dataframe().iloc[0]
        assert row["status"] == "ambiguous"

        run.reconcile()  # the list still fails: still ambiguous, still not re-sent
        assert job.status == "ambiguous" and len(app.audit()) == 1
        with pytest.raises(ValueError, match=r"could pay twice.*reconcile"):
            job.retry()
        assert run.retry_failed() == []
        card = sora_nb.ui.JobCard(job)  # the card offers no Retry that would pay twice, and says why
        try:
            wait_for(lambda: card.retry_button.tooltip is not None, what="the card's first drawing")
            assert card.retry_button.disabled and "reconcile" in card.retry_button.tooltip
        finally:
            card.close()

        app.create_status, app.list_route = None, True
        run.reconcile()
        run.wait(timeout=60)
        assert job.status == "completed" and job.remote_id == app.audit()[0]["id"]
    assert len(app.audit()) == 1


@pytest.mark.slow
def test_ambiguity_b_a_search_that_proves_absence_lets_reconcile_send_it_again(
    gateway: tuple[HostileGateway, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy failed before forwarding (502, nothing made) and its list is down: ambiguous, not re-sent.
    Once the list works, ``job.reconcile()`` sees the job is not there and sends it: 1 create in all."""
    _no_env(monkeypatch)
    app, base_url = gateway
    app.create_status, app.create_upstream, app.list_route = 502, False, False
    with sora_nb.connect("openai-compatible", base_url=base_url, run_root=tmp_path,
                         poll_policy=_fast_polls()) as client:
        job = client.generate("a proxy that fell over", seconds="4")
        with pytest.raises(sora_nb.JobFailedError):
            job.wait(timeout=60)
        assert job.status == "ambiguous" and app.audit() == []
        app.create_status, app.list_route = None, True
        job.reconcile().wait(timeout=60)
        assert job.status == "completed" and job._record.attempts == 2
    assert [entry["id"] for entry in app.audit()] == [job.remote_id]


@pytest.mark.slow
def test_ambiguity_b_resume_looks_again_for_an_ambiguous_job(
    gateway: tuple[HostileGateway, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ambiguous job left in a run (the process ended) is looked for again by ``sora_nb.resume``."""
    _no_env(monkeypatch)
    app, base_url = gateway
    app.create_status, app.list_route = 502, False
    with sora_nb.connect("openai-compatible", base_url=base_url, run_root=tmp_path) as client:
        run = client.sweep(prompt=["left for later"]).start(run_dir=tmp_path / "run")
        run.wait(timeout=60)
        assert run.counts() == {"ambiguous": 1}
    app.create_status, app.list_route = None, True
    resumed = sora_nb.resume(tmp_path / "run")
    try:
        resumed.wait(timeout=60)
        assert resumed.counts() == {"completed": 1}
    finally:
        resumed.close()
    assert [entry["id"] for entry in app.audit()] == [resumed.jobs[0].remote_id]


# ---------------------------------------------------------------------- (c) repeats under 5xx and lost answers
@pytest.mark.slow
def test_claims_c_repeats_under_faults_never_share_a_video(tmp_path: Path) -> None:
    """Before: error rate 0.3 with lost create answers, 3 prompts x 10 repeats at concurrency 10: 30 rows
    ``completed`` holding only 22-24 distinct videos (siblings adopted each other's). Now each row has its own
    video, and every create the server accepted is in exactly one row or reported by ``run.audit()``."""
    flaky = SimulatorTransport(SimulatorConfig(seed=21, time_scale=FAST, max_side=32, fps=4, error_rate=0.3,
                                               drop_after_create_rate=0.2))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=flaky, retry=QUICK) as client:
        client.api.list_settle = 0.05  # the simulator lists a job the moment it is made
        run = client.sweep(prompt=["a red fox", "a blue whale", "a green frog"], repeats=10).start(max_concurrency=10)
        run.wait(timeout=120)
        # A list that failed six times running leaves its job ambiguous (never re-sent): looking again adopts it.
        for _ in range(5):
            if run.counts().get("ambiguous"):
                run.reconcile().wait(timeout=120)
        report = run.audit()
    rows = _rows(run.run_dir)
    completed = [row for row in rows if row.status == "completed"]
    ids = [row.remote_id for row in completed]
    assert len(rows) == 30 and len(completed) == 30, run.counts()
    assert len(set(ids)) == 30
    assert len({row.checksum for row in completed}) == 30
    accepted = {entry["id"] for entry in flaky.audit()}
    unclaimed = accepted - set(ids)
    assert {orphan.id for orphan in report.orphans} == unclaimed
    assert report.duplicates == [] and report.missing == []
    assert sum(row.attempts for row in rows) >= len(accepted)  # every create that left is counted


class _SiblingOnTheWire(httpx.AsyncBaseTransport):
    """The simulator, where two creates of the same request are both made; the first one's answer is then
    lost, and the second one's comes only 0.3 s later (so the first one's search runs while it is unanswered)."""

    def __init__(self) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=8, time_scale=FAST, max_side=32, fps=4))
        self.creates = 0
        self.second_made: asyncio.Event | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_create = request.method == "POST" and request.url.path == "/v1/videos"
        self.second_made = self.second_made or asyncio.Event()
        response = await self.inner.handle_async_request(request)
        if is_create:
            self.creates += 1
            if self.creates == 1:
                await asyncio.wait_for(self.second_made.wait(), 5)
                raise httpx.ReadError("connection reset after the job was made", request=request)
            if self.creates == 2:
                self.second_made.set()
                await asyncio.sleep(0.3)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
def test_claims_a_search_waits_for_a_sibling_create_on_the_wire(tmp_path: Path) -> None:
    """Before: the first repeat, its answer lost, searched at once, found its sibling's newer job (still
    unanswered) and adopted it; the sibling then got the same id: 2 rows, 1 video, 1 orphan. Now the search
    waits until no create of that prompt is on the wire, and each repeat has its own job."""
    transport = _SiblingOnTheWire()
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        client.api.list_settle = 0.05
        run = client.sweep(prompt=["twins"], repeats=2).start(max_concurrency=2)
        run.wait(timeout=60)
        assert run.counts() == {"completed": 2}
        assert run.audit().ok
    accepted = sorted(entry["id"] for entry in transport.inner.audit())
    assert len(accepted) == 2 and sorted(str(job.remote_id) for job in run) == accepted


@pytest.mark.slow
def test_audit_reports_orphans_and_deletes_them_when_asked(tmp_path: Path) -> None:
    """An accepted create that no row claims (a second process paid for it) is an orphan; deleting it on
    the server leaves a clean audit."""
    transport = SimulatorTransport(SimulatorConfig(seed=4, time_scale=FAST, max_side=32, fps=4))
    with sora_nb.connect("simulator", run_root=tmp_path, transport=transport) as client:
        run = client.sweep(prompt=["a lighthouse"], repeats=2).start(run_dir=tmp_path / "run")
        run.wait(timeout=60)
        stray = client.call(lambda api: api.create(prompt="a lighthouse", seconds="4"))
        client.call(lambda api: api.create(prompt="not in this run", seconds="4"))
        report = run.audit()
        assert [orphan.id for orphan in report.orphans] == [stray.id]
        assert not report.ok and "1 orphan" in str(report) and stray.id in report._repr_html_()
        assert report.delete_orphans() == [stray.id]
        assert run.audit().ok


# ---------------------------------------------------------------------- helpers
def _rows(run_dir: Path) -> list[JobRecord]:
    with Ledger.open(run_dir, readonly=True) as ledger:
        return ledger.jobs()


# ---------------------------------------------------------------------- (d) the storm
STORM_SIMULATOR = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sora_nb.simulator import SimulatorConfig, start_server

    port_file, cache_dir = sys.argv[1], sys.argv[2]
    config = SimulatorConfig(seed=29, time_scale=0.01, max_side=32, fps=4, cache_dir=cache_dir, latency=0.01,
                             error_rate=0.15, drop_rate=0.05, drop_after_create_rate=0.2)
    with start_server(config, port=0) as server:
        Path(port_file + ".tmp").write_text(str(server.port))
        Path(port_file + ".tmp").rename(port_file)
        sys.stdin.read()  # serve until the test closes our stdin
""")

STORM_USER = textwrap.dedent("""
    import sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    port, run_dir = sys.argv[1], sys.argv[2]
    client = sora_nb.connect("openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", run_root=run_dir + "-unused",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1),
                             retry=sora_nb.RetryPolicy(base=0.02, cap=0.2))
    client.api.list_settle = 0.1
    run = client.sweep(prompt=["storm fox", "storm whale", "storm frog"], repeats=10).start(
        max_concurrency=10, run_dir=run_dir)
    print(run.run_dir, flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)  # never reached: the test kills us first
""")


@pytest.mark.slow
def test_storm_5xx_drops_lost_answers_and_sigkill_then_resume_pays_once_per_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 jobs (3 prompts x 10 repeats) under 5xx, dropped connections and lost create answers, the driving
    process SIGKILLed mid-run with creates on the wire, then ``sora_nb.resume``: creates == jobs, 30 distinct
    videos, and each file's checksum matches the server's own file for that job."""
    _no_env(monkeypatch)
    port_file = tmp_path / "port"
    sim = subprocess.Popen([sys.executable, "-c", STORM_SIMULATOR, str(port_file), str(tmp_path / "cache")],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert sim.poll() is None and time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.02)
        port = int(port_file.read_text())
        origin = f"http://127.0.0.1:{port}"
        run_dir = tmp_path / "run"
        _drive_until_killed(port, run_dir, tmp_path)
        time.sleep(0.3)  # let the server finish with the dead process's connections before it is asked

        client = sora_nb.connect("openai-compatible", base_url=f"{origin}/v1", run_root=tmp_path, retry=QUICK,
                                 poll_policy=_fast_polls())
        try:
            client.api.list_settle = 0.1
            run = sora_nb.resume(run_dir, client=client)
            run.wait(timeout=90)
            for _ in range(5):
                if run.counts().get("ambiguous"):
                    run.reconcile().wait(timeout=60)
            assert run.counts() == {"completed": 30}
            report = run.audit()
            assert report.ok, str(report)
        finally:
            client.close()

        accepted = httpx.get(f"{origin}/_simulator/audit", timeout=10).json()
        rows = _rows(run_dir)
        assert len(accepted) == len(rows) == 30  # creates == jobs
        assert sorted(row.remote_id for row in rows) == sorted(entry["id"] for entry in accepted)
        assert len({row.checksum for row in rows}) == 30
        for row in rows:
            assert sha256_file(run_dir / str(row.video_path)) == row.checksum
            served = _get_with_retries(f"{origin}/v1/videos/{row.remote_id}/content")
            assert f"sha256:{hashlib.sha256(served).hexdigest()}" == row.checksum, row.job_id
    finally:
        stop(sim)  # closing its stdin tells the simulator to end


def _drive_until_killed(port: int, run_dir: Path, tmp_path: Path) -> None:
    """Run the user's sweep in a child process; SIGKILL it once 10 jobs are created and others are on the wire."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("SORA_NB_PROFILE", "SORA_NB_BASE_URL")},
           "OPENAI_API_KEY": ANY_KEY}
    child = subprocess.Popen([sys.executable, "-c", STORM_USER, str(port), str(run_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                rows = _rows(run_dir) if (run_dir / LEDGER_FILE).exists() else []
            except Exception:  # the child may be creating it right now
                rows = []
            acked = sum(row.create_state == "acked" for row in rows)
            if acked >= 10 and any(row.create_state == "sending" for row in rows):
                break
            if child.poll() is not None or time.monotonic() > deadline:
                out, err = child.communicate(timeout=10)
                pytest.fail(f"the moment to kill never came (exit {child.returncode}): {out!r} {err[-2000:]!r}")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert sum(row.status == "completed" for row in _rows(run_dir)) < 30


def _get_with_retries(url: str) -> bytes:
    """The server's own file (its fault options apply to this request too)."""
    for _ in range(20):
        try:
            response = httpx.get(url, headers={"authorization": f"Bearer {ANY_KEY}"}, timeout=10)
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            return response.content
    raise AssertionError(f"could not download {url}")


# ---------------------------------------------------------------------- (e, f) server data, secrets: helpers
def _tiny_mp4() -> bytes:
    from sora_nb.simulator._render import RenderSpec, ensure_rendered

    with tempfile.TemporaryDirectory() as cache:
        return ensure_rendered(RenderSpec(segments=(("a fox", 1),), size="720x1280", max_side=32, fps=2),
                               cache).video.read_bytes()


class _Scripted:
    """A Videos API whose every answer the test plants: ``answer(method, path, headers, body)`` returns
    ``(status, headers, body bytes)``. Every request is kept (method, path, headers, body)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request = {"method": scope["method"], "path": scope["path"], "query": scope["query_string"].decode(),
                   "headers": headers, "body": body}
        self.requests.append(request)
        status, out_headers, data = self.answer(request)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers.items()]
        raw.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})


def _job(video_id: str, status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"id": video_id, "object": "video", "status": status, "model": "sora-2", "size": "720x1280",
            "seconds": "4", "progress": 100 if status == "completed" else 0, "created_at": int(time.time()),
            **extra}


def _json(status: int, body: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json", **headers}, json.dumps(body).encode()


# ---------------------------------------------------------------------- server data is data (point 4)
HOSTILE_IDS = {
    "dotfile": ".env",
    "parent": "../x",
    "crlf": "a\r\nb",
    "10kB": "v" * 10_000,
}


@pytest.mark.parametrize("hostile", list(HOSTILE_IDS.values()), ids=list(HOSTILE_IDS))
def test_a_hostile_id_from_the_server_fails_the_job_and_reads_no_local_file(
        hostile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the id ``.env`` completed and Extend uploaded ``./.env`` to the server; ``a\\r\\nb`` ended in
    an untyped ``httpx.InvalidURL``. After: each ends the job failed (``unsafe_id``), naming the cause, and
    the server receives no byte of any local file."""
    secret = "SECRET-" + secrets.token_hex(8)
    work = tmp_path / "work"
    work.mkdir()
    for name in (".env", "x"):  # ./.env and, for "../x", tmp_path/x
        (work / name).write_text(secret)
        (tmp_path / name).write_text(secret)
    monkeypatch.chdir(work)
    mp4 = _tiny_mp4()

    def answer(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        method, path = request["method"], request["path"]
        if method == "POST" and path == "/v1/videos":
            return _json(200, _job(hostile))
        if method == "POST" and path.startswith("/v1/videos/"):  # an extension or an edit
            return _json(200, _job("video_extension"))
        if path.endswith("/content"):
            if "thumbnail" in request["query"]:
                return _json(404, {"error": {"message": "no thumbnail"}})
            return 200, {"content-type": "video/mp4"}, mp4
        if method == "GET" and path == "/v1/videos":
            return _json(200, {"object": "list", "data": [], "has_more": False})
        return _json(200, _job(hostile))

    server = _Scripted(answer)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with _served(server) as origin, sora_nb.connect(
            "openai-compatible", base_url=f"{origin}/v1", api_key="sk-hostile-id-test-0000", run_root=work / "runs",
            poll_policy=_fast_polls()) as client:
        job = client.generate("a fox in the snow", model="sora-2", size="720x1280", seconds="4")
        try:
            job.wait(timeout=30)
            job.extend("it keeps running", seconds="4").wait(timeout=30)  # what pressing Extend does
        except sora_nb.JobFailedError:
            pass
    sent = b"".join(r["body"] for r in server.requests) + "".join(r["path"] for r in server.requests).encode()
    assert secret.encode() not in sent, "a local file reached the server"
    assert job.status == "failed" and job._record.error_code == "unsafe_id", (job.status, job._record.error_code)
    assert "not safe to use" in (job._record.error_message or "") and "Fix:" in (job._record.error_message or "")
    creates = [r for r in server.requests if r["method"] == "POST"]
    assert len(creates) == 1, [r["path"] for r in creates]  # nothing after the refusal
    assert len(server.requests) == 1, [r["path"][:40] for r in server.requests]  # no URL was made of the id
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "runs" not in p.parts)
    assert after == [p for p in before if "runs" not in p.parts], "a file outside the run was written"


def test_a_str_is_always_an_id_and_only_a_path_uploads_a_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``api.extend("video_abc")`` uploaded ``./video_abc`` when such a file existed. After: a ``str``
    is sent as ``{"video": {"id": ...}}``; a ``pathlib.Path`` uploads; a device or FIFO is refused."""
    import asyncio

    import httpx

    monkeypatch.chdir(tmp_path)
    (tmp_path / "video_abc").write_bytes(b"LOCAL-BYTES")
    (tmp_path / "clip.mp4").write_bytes(b"MY-CLIP")
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return httpx.Response(200, json=_job("video_new", status="queued"))

    async def main() -> None:
        async with sora_nb.ContractClient(base_url="http://api.test/v1", api_key="sk-test-0000000000",
                                          transport=httpx.MockTransport(handler)) as api:
            await api.extend("video_abc", "more", seconds="4")
            await api.edit(Path("clip.mp4"), "add rain")
            with pytest.raises(sora_nb.ValidationError, match=r"not a regular file.*character device.*Fix:"):
                await api.extend(Path("/dev/zero"), "more", seconds="4")
            with pytest.raises(sora_nb.ValidationError, match=r"not a valid id.*Fix:"):
                await api.edit(".env", "more")

    asyncio.run(main())
    assert json.loads(seen[0])["video"] == {"id": "video_abc"} and b"LOCAL-BYTES" not in seen[0]
    assert b"MY-CLIP" in seen[1]
    assert len(seen) == 2


@pytest.mark.parametrize(("profile", "hostile"), [("xai", ".."), ("together", "a\r\nb"), ("openrouter", "x" * 300),
                                                  ("gemini", "models/../operations/x")])
def test_a_service_adapter_checks_an_id_before_it_polls(profile: str, hostile: str) -> None:
    """Before: ``..`` became ``GET videos/..`` (the API root); after: a typed refusal, nothing sent."""
    import asyncio

    import httpx

    from sora_nb.providers import make_client

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200, json={})

    async def main() -> None:
        async with make_client(sora_nb.PROFILES[profile], base_url="http://api.test/v1", api_key="k-000000",
                               transport=httpx.MockTransport(handler)) as api:
            with pytest.raises(sora_nb.ValidationError, match=r"not a valid id.*Fix:"):
                await api.poll(hostile)

    asyncio.run(main())
    assert sent == []


@pytest.mark.parametrize("via_cdn", [False, True], ids=["from_the_api", "from_a_cdn"])
def test_a_file_redirect_on_download_is_reported_as_such(via_cdn: bool, tmp_path: Path) -> None:
    """Before: a ``file://`` redirect raised an untyped ``ValueError: unknown url type`` from the API's origin,
    and from a CDN (whose client followed redirects itself) "the connection broke. Fix: try again", retried.
    After: a :class:`DownloadError` saying the server sent a file: URL, nothing written, nothing retried."""
    import asyncio

    import httpx

    hits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        if via_cdn and request.url.host == "api.test":
            return httpx.Response(302, headers={"location": "http://cdn.test/v.mp4?sig=abc"})
        return httpx.Response(302, headers={"location": "file:///etc/passwd"})

    async def main() -> None:
        async with sora_nb.ContractClient(base_url="http://api.test/v1", api_key="sk-test-0000000000",
                                          transport=httpx.MockTransport(handler)) as api:
            with pytest.raises(sora_nb.DownloadError, match=r"redirected the download to a file: URL.*Fix:"):
                await api.download("video_1", tmp_path / "v.mp4")

    asyncio.run(main())
    assert len(hits) == (2 if via_cdn else 1)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- secrets stay out (point 5)
PASSWORD = "pw-" + secrets.token_hex(10)
KEY = "key-" + secrets.token_hex(16)  # no "sk-" prefix: no pattern knows it, only the client does
PROMPTS = ("refused at create", "fails while running", "signed download")


class _Echoing:
    """A hostile Videos API that echoes the credentials it is sent (the Authorization header, the key, the
    decoded basic-auth password) into every field a client might keep: ``error.code``, ``param``, ``type`` and
    ``message`` of a 400, a failed job's ``error``, response headers (``x-echo``, ``x-request-id``) and the
    query of the signed CDN link that its video redirects to."""

    def __init__(self, mp4: bytes) -> None:
        self.mp4 = mp4
        self.cdn = ""  # another origin (localhost vs 127.0.0.1): the credential-less client fetches it
        self.app = _Scripted(self.answer)

    @staticmethod
    def echo(headers: dict[str, str]) -> tuple[str, str]:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        secret = b64decode(token).decode().partition(":")[2] if scheme.lower() == "basic" else token
        return f"{auth} {secret}".strip() or "none", secret

    def answer(self, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        method, path = request["method"], request["path"]
        echo, secret = self.echo(request["headers"])
        loud = {"x-echo": echo, "x-request-id": echo}
        if path.startswith("/cdn/"):
            return 200, {"content-type": "video/mp4", **loud}, self.mp4
        if method == "POST" and path == "/v1/videos":
            prompt = json.loads(request["body"])["prompt"]
            if prompt == PROMPTS[0]:
                return _json(400, {"error": {"code": echo, "param": echo, "type": echo, "message": f"bad {echo}"}},
                             **loud)
            return _json(200, _job("video_fail" if prompt == PROMPTS[1] else "video_sig", status="queued"), **loud)
        if path == "/v1/videos/video_fail":
            return _json(200, _job("video_fail", status="failed", error={"code": echo, "message": echo}), **loud)
        if path == "/v1/videos/video_sig":
            return _json(200, _job("video_sig"), **loud)
        if path == "/v1/videos/video_sig/content" and "thumbnail" not in request["query"]:
            signed = f"{self.cdn}/cdn/v.mp4?se=2030&sig={secret}&X-Amz-Signature={secret}&token={secret}"
            return 302, {"location": signed, **loud}, b""
        return _json(404, {"error": {"code": echo, "message": f"no {echo}", "type": echo, "param": echo}}, **loud)


@pytest.fixture
def echoing() -> Iterator[tuple[_Echoing, str, str]]:
    """The echoing server; its base URL with a password in it, and without one."""
    server = _Echoing(_tiny_mp4())
    with _served(server.app) as origin:
        server.cdn = origin.replace("127.0.0.1", "localhost")
        host = origin.removeprefix("http://")
        yield server, f"http://alice:{PASSWORD}@{host}/v1", f"{origin}/v1"


def _credentials() -> tuple[bytes, ...]:
    from base64 import b64encode

    return KEY.encode(), PASSWORD.encode(), b64encode(f"alice:{PASSWORD}".encode())


def _leaks(texts: dict[str, str | bytes]) -> dict[str, list[str]]:
    """Where each credential was found (an empty dict: nowhere)."""
    found: dict[str, list[str]] = {}
    for where, text in texts.items():
        data = text.encode("utf-8", "replace") if isinstance(text, str) else text
        hits = [c.decode() for c in _credentials() if c in data]
        if hits:
            found[where] = hits
    return found


def _files(root: Path) -> dict[str, str | bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _client_side(record: logging.LogRecord) -> bool:
    """Records of the client's process, not of the test's own server (uvicorn logs what it was sent)."""
    return not record.name.startswith("uvicorn")


@contextmanager
def _logging_at_debug(path: Path) -> Iterator[None]:
    """Root, httpx and httpcore at DEBUG into a real file handler, as a user debugging would set them."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.addFilter(_client_side)
    names = ("", "httpx", "httpcore", "sora_nb")
    levels = {name: logging.getLogger(name).level for name in names}
    logging.getLogger().addHandler(handler)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _drive(client: sora_nb.Client, out: Path, name: str, shown: dict[str, str | bytes]) -> None:
    """A user's session: a sweep over the three prompts, its DataFrame exported, every repr and error read."""
    run = client.sweep(prompt=list(PROMPTS), model=["sora-2"], size=["720x1280"], seconds=["4"]).start()
    run.wait(timeout=60)
    df = run.to_dataframe()
    df.to_csv(out / f"{name}.csv")
    df.to_parquet(out / f"{name}.parquet")
    shown[f"{name} df"] = df.to_string() + df.to_html()
    shown[f"{name} reprs"] = " ".join([repr(client), repr(client.profile), repr(client.api), repr(run),
                                       run._repr_html_(), *(repr(job) for job in run.jobs)])
    errors = []
    for job in run.jobs:
        try:
            job.wait(timeout=10)
        except sora_nb.JobFailedError as exc:
            errors += [str(exc), repr(exc), str(exc.job._record)]
    shown[f"{name} errors"] = " ".join(errors)
    assert sorted(job.status for job in run.jobs) == ["completed", "failed", "failed"], df


def test_an_echoing_server_finds_the_key_and_password_in_no_file_log_repr_or_error(
        echoing: tuple[_Echoing, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the key echoed in ``error.code`` reached the ledger, DataFrame, CSV/Parquet and
    ``JobFailedError``; the base URL's password reached httpx's INFO log and ``repr(client.profile)``; the
    signed CDN link reached httpx's log. After: found in 0 places."""
    server, with_password, plain = echoing
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "debug.log"
    shown: dict[str, str | bytes] = {}
    caplog.set_level(logging.DEBUG)
    with _logging_at_debug(log):
        with sora_nb.connect("openai-compatible", base_url=with_password, run_root=out / "runs",
                             poll_policy=_fast_polls()) as client:
            _drive(client, out, "password", shown)
        with sora_nb.connect("openai-compatible", base_url=plain, api_key=KEY, run_root=out / "runs",
                             poll_policy=_fast_polls()) as client:
            _drive(client, out, "key", shown)
    # The server did get the credentials (and so could echo them), in the header meant for it.
    sent = {r["headers"].get("authorization", "").split(" ")[0] for r in server.app.requests
            if not r["path"].startswith("/cdn/")}
    assert sent == {"Basic", "Bearer"}, sent
    assert not [r for r in server.app.requests if r["path"].startswith("/cdn/") and "authorization" in r["headers"]]
    logged = log.read_text(encoding="utf-8")
    assert "httpx" in logged and "httpcore" in logged and "sig=REDACTED" in logged  # the loggers did write
    records = "\n".join(caplog.handler.format(r) for r in caplog.records if _client_side(r))
    shown |= {"debug.log": logged, "caplog": records, **_files(out)}
    assert _leaks(shown) == {}


_NOTEBOOK_CELLS = (
    "import logging, os, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)\n"
    "import sora_nb\n"
    "polls = sora_nb.PollPolicy(floor=0.01, ceiling=0.2, first=0.01)\n"
    "prompts = " + repr(list(PROMPTS)),
    "with_password = sora_nb.connect('openai-compatible', base_url=os.environ['ECHO_PASSWORD_URL'],\n"
    "                                 run_root='runs', poll_policy=polls)\n"
    "with_key = sora_nb.connect('openai-compatible', base_url=os.environ['ECHO_URL'],\n"
    "                           api_key=os.environ['ECHO_KEY'], run_root='runs', poll_policy=polls)\n"
    "with_password, with_password.profile, with_key, with_key.profile",
    "runs = [c.sweep(prompt=prompts, model=['sora-2'], size=['720x1280'], seconds=['4']).start().wait(timeout=60)\n"
    "        for c in (with_password, with_key)]\n"
    "runs",
    "for i, run in enumerate(runs):\n"
    "    df = run.to_dataframe()\n"
    "    df.to_csv(f'run{i}.csv'); df.to_parquet(f'run{i}.parquet')\n"
    "    display(df)\n"
    "    for job in run.jobs:\n"
    "        try:\n"
    "            job.wait(timeout=10)\n"
    "        except sora_nb.JobFailedError as exc:\n"
    "            print(repr(exc), exc, job._record)",
    "sora_nb.ui.card(runs[0].jobs[0])",
    "sora_nb.ui.card(runs[1].jobs[1])",
    "with_password.close(); with_key.close()",
)


@pytest.mark.slow
def test_an_echoing_server_leaves_no_credential_in_an_executed_notebook(
        echoing: tuple[_Echoing, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same session in a notebook (logging at DEBUG to the cells' output, DataFrames and job cards
    displayed, widget state saved): the saved notebook, its runs and its exports hold no credential."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _server, with_password, plain = echoing
    monkeypatch.setenv("ECHO_PASSWORD_URL", with_password)
    monkeypatch.setenv("ECHO_URL", plain)
    monkeypatch.setenv("ECHO_KEY", KEY)
    work = tmp_path / "notebook"
    work.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _NOTEBOOK_CELLS])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(work)}}).execute()
    nbformat.write(notebook, work / "executed.ipynb")
    saved = (work / "executed.ipynb").read_text(encoding="utf-8")
    assert "httpcore" in saved and "sig=REDACTED" in saved and "widgets" in notebook.metadata  # it did all that
    assert sum(1 for p in work.rglob("*.mp4")) == 2
    assert _leaks(_files(work)) == {}


def test_a_refused_base_url_does_not_repeat_its_password() -> None:
    """Before: ``base_url 'ftp://alice:<password>@...' is not an http(s) URL``; after: the password redacted."""
    for url in (f"ftp://alice:{PASSWORD}@relay.test/v1", f"alice:{PASSWORD}@relay.test/v1"):
        with pytest.raises(sora_nb.ConfigurationError, match="not an http") as info:
            sora_nb.connect("openai-compatible", base_url=url)
        assert _leaks({"message": str(info.value)}) == {}, str(info.value)
    with pytest.raises(ValueError, match="not an http") as raw:
        sora_nb.ContractClient(base_url=f"ftp://alice:{PASSWORD}@relay.test/v1")
    assert _leaks({"message": str(raw.value)}) == {}


def test_the_server_list_that_a_gallery_shows_is_scrubbed_of_the_key() -> None:
    """Before: a failed job's ``error.code``/``message`` in ``GET /videos`` reached the gallery as sent."""
    import asyncio

    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        echo = request.headers["authorization"]
        return httpx.Response(200, json={"object": "list", "has_more": False, "data": [
            _job("video_1", status="failed", error={"code": echo, "message": f"refused {echo}"})]})

    async def main() -> Any:
        async with sora_nb.ContractClient(base_url="http://api.test/v1", api_key=KEY,
                                          transport=httpx.MockTransport(handler)) as api:
            return await api.list()

    page = asyncio.run(main())
    assert page.data[0].error is not None and "REDACTED" in page.data[0].error.message
    assert _leaks({"list": repr(page)}) == {}


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[Callable[..., LoopbackSimulator]]:
    """``loopback("--error-rate", "0.3", ...)`` starts a ``sora-nb simulator`` with those options."""
    with loopback_simulators(tmp_path) as start:
        yield start

# ---------------------------------------------------------------------- (g) one driver per run
LOCK_JOBS = 10

DRIVER = textwrap.dedent("""
    import sys
    import sora_nb
    from sora_nb._polling import PollPolicy

    base_url, run_dir, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = sora_nb.connect("openai-compatible", base_url=base_url, run_root=run_dir + "-unused",
                             poll_policy=PollPolicy(floor=0.05, ceiling=0.5, first=0.1))
    run = client.sweep(prompt=[f"lock test scene {i}" for i in range(jobs)]).start(max_concurrency=2, run_dir=run_dir)
    print("started", flush=True)
    run.wait(timeout=120)
    print("finished", flush=True)
    client.close()
""")

RESUMER = textwrap.dedent("""
    import json, sys
    import sora_nb

    run_dir = sys.argv[1]
    print("ready", flush=True)
    sys.stdin.readline()  # every resumer is told to go at the same moment
    try:
        run = sora_nb.resume(run_dir)
    except Exception as exc:
        print(json.dumps({"refused": type(exc).__name__, "message": str(exc)}), flush=True)
        raise SystemExit(0)
    try:
        run.wait(timeout=120)
        print(json.dumps({"drove": run.counts()}), flush=True)
    finally:
        run.close()
""")


def start_driver(sim: LoopbackSimulator, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", DRIVER, sim.base_url, str(run_dir), str(LOCK_JOBS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=run_dir.parent)


def start_resumers(run_dir: Path, count: int) -> list[subprocess.Popen[str]]:
    """``count`` processes that each call ``sora_nb.resume(run_dir)`` at the same moment."""
    resumers = [subprocess.Popen([sys.executable, "-c", RESUMER, str(run_dir)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                                 cwd=run_dir.parent) for _ in range(count)]
    for resumer in resumers:
        assert resumer.stdout is not None and resumer.stdout.readline().strip() == "ready"
    for resumer in resumers:
        assert resumer.stdin is not None
        resumer.stdin.write("go\n")
        resumer.stdin.flush()
    return resumers


def outcomes(resumers: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for resumer in resumers:
        out, err = stop(resumer, timeout=60)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"a resumer printed no outcome (exit {resumer.returncode}): {out} {err}"
        results.append(json.loads(lines[-1]))
    return results


def mid_run(rows: list[JobRecord]) -> bool:
    """Some jobs made on the server, some not sent yet: the moment two drivers would both send those."""
    acked = sum(row.create_state == "acked" for row in rows)
    pending = sum(row.create_state == "pending" for row in rows)
    return len(rows) == LOCK_JOBS and acked >= 2 and pending >= 4


def check_every_job_made_once(sim: LoopbackSimulator, run_dir: Path) -> None:
    audit = sim.audit()
    rows = ledger_rows(run_dir)
    assert [row.status for row in rows] == ["completed"] * LOCK_JOBS
    assert sorted(row.remote_id or "" for row in rows) == sorted(entry["id"] for entry in audit)
    for row in rows:
        assert row.video_path and sha256_file(run_dir / row.video_path) == row.checksum


@pytest.mark.slow
def test_two_resumes_after_a_sigkill_leave_exactly_one_driver(
    loopback: Callable[..., LoopbackSimulator], tmp_path: Path
) -> None:
    """The driver is SIGKILLed mid-sweep; two processes then resume the run at once. Before: 18 creates
    for 10 jobs (both drove, both sent the unsent ones). After: the dead driver's lock died with it, one resumer
    takes it and drives, the other is refused naming the holder, and the server made 10 jobs."""
    sim = loopback("--time-scale", "0.02", "--latency", "0.05")
    run_dir = tmp_path / "run"
    driver = start_driver(sim, run_dir)
    try:
        wait_for(lambda: mid_run(ledger_rows(run_dir)), what="the sweep to be mid-run")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        out, _err = stop(driver)
    assert driver.returncode == -signal.SIGKILL and "finished" not in out

    results = outcomes(start_resumers(run_dir, 2))

    assert len(sim.audit()) == LOCK_JOBS, results  # no job paid twice
    drove = [r for r in results if "drove" in r]
    refused = [r for r in results if "refused" in r]
    assert drove == [{"drove": {"completed": LOCK_JOBS}}] and len(refused) == 1, results
    assert refused[0]["refused"] == "RunLockedError"
    message = refused[0]["message"]
    assert socket.gethostname() in message and "since" in message
    assert "sora_nb.load_run(" in message and "Fix:" in message
    check_every_job_made_once(sim, run_dir)


@pytest.mark.slow
def test_resume_while_the_first_process_still_drives_is_refused(
    loopback: Callable[..., LoopbackSimulator], tmp_path: Path
) -> None:
    """``sora_nb.resume`` from a second process while the first still drives the run. Before: 18 creates
    for 10 jobs. After: refused with RunLockedError naming the driver's pid and host; 10 creates."""
    sim = loopback("--time-scale", "0.02", "--latency", "0.05")
    run_dir = tmp_path / "run"
    driver = start_driver(sim, run_dir)
    try:
        wait_for(lambda: mid_run(ledger_rows(run_dir)), what="the sweep to be mid-run")
        (result,) = outcomes(start_resumers(run_dir, 1))
    finally:
        out, err = stop(driver, timeout=60)
    assert "finished" in out, err

    assert len(sim.audit()) == LOCK_JOBS, result  # no job paid twice
    assert result["refused"] == "RunLockedError", result
    assert f"pid {driver.pid}" in result["message"] and socket.gethostname() in result["message"]
    check_every_job_made_once(sim, run_dir)


@pytest.fixture
def slow_sim() -> SimulatorTransport:
    """An in-process simulator whose jobs take about a second: a run is still driven while a test acts."""
    return SimulatorTransport(SimulatorConfig(seed=5, time_scale=0.02, max_side=32, fps=4))


def test_a_second_client_in_this_process_cannot_drive_a_running_run(
    tmp_path: Path, slow_sim: SimulatorTransport
) -> None:
    """Two clients in one process are two drivers too; readers never need the lock; once the run is idle
    another client may take it over, and closing releases it."""
    from sora_nb._runs import list_runs

    run_dir = tmp_path / "run"
    prompts = ["a lighthouse at dawn", "a fox in snow", "a tram at night"]
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim, poll_policy=FAST_POLLS) as first, \
            sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim, poll_policy=FAST_POLLS) as second:
        run = first.sweep(prompt=prompts).start(run_dir=run_dir)
        wait_for(lambda: ledger_rows(run_dir), what="the ledger")
        with pytest.raises(sora_nb.RunLockedError, match=rf"pid {os.getpid()}\b.*this process") as info:
            sora_nb.resume(run_dir, client=second)
        assert info.value.pid == os.getpid() and info.value.host == socket.gethostname()
        assert info.value.since is not None and info.value.since <= time.time()
        assert "Fix:" in str(info.value) and "sora_nb.load_run(" in str(info.value)
        with pytest.raises(sora_nb.RunLockedError):
            second.sweep(prompt=prompts).start(run_dir=run_dir)
        # Readers while it is driven: the DataFrame, `sora-nb ls`, a read-only ledger.
        assert len(sora_nb.load_run(run_dir)) == 3
        assert [summary.total for summary in list_runs(run_dir)] == [3]
        with Ledger.open(run_dir, readonly=True) as ledger:
            assert len(ledger.jobs()) == 3
        assert not run.done

        run.wait(timeout=60)
        # Idle now: another client of this process takes it over; the first may no longer add to it.
        again = sora_nb.resume(run_dir, client=second)
        assert again.wait(timeout=30).counts() == {"completed": 3}
        with pytest.raises(sora_nb.RunLockedError, match="taken over"):
            run.submit([run.jobs[0].spec])
    assert len(slow_sim.audit()) == 3
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim) as third:
        assert sora_nb.resume(run_dir, client=third).wait(timeout=30).counts() == {"completed": 3}
    assert len(slow_sim.audit()) == 3


def test_the_cli_refuses_to_resume_or_clean_a_driven_run_and_lists_it(
    tmp_path: Path, slow_sim: SimulatorTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    from sora_nb._cli import main

    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim, poll_policy=FAST_POLLS) as client:
        run = client.sweep(prompt=["a heron", "a crane"]).start(run_dir=tmp_path / "run")
        assert main(["resume", str(run.run_dir), "--quiet"]) == 2
        assert f"is driven by pid {os.getpid()}" in capsys.readouterr().err
        assert main(["ls", str(run.run_dir)]) == 0
        assert "2 jobs" in capsys.readouterr().out
        # Deleting orphans is driving too: a create on the wire would look like one.
        assert main(["audit", str(run.run_dir), "--delete-orphans"]) == 2
        assert f"is driven by pid {os.getpid()}" in capsys.readouterr().err
        run.wait(timeout=30)
    assert len(slow_sim.audit()) == 2


def test_a_closed_client_takes_no_lock(tmp_path: Path, slow_sim: SimulatorTransport) -> None:
    client = sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.sweep(prompt=["a heron"]).start(run_dir=tmp_path / "run")
    with sora_nb.connect("simulator", run_root=tmp_path, transport=slow_sim, poll_policy=FAST_POLLS) as other:
        assert other.sweep(prompt=["a heron"]).start(run_dir=tmp_path / "run").wait(timeout=30).counts() == {
            "completed": 1}


# ---------------------------------------------------------------------- (h) storage faults end cleanly
@dataclass
class SmallDisk:
    """A real small filesystem for run directories: a tmpfs when this process may mount one (as root
    in CI), else the same faults made without privileges (a file size limit, a read-only directory)."""

    path: Path
    mounted: bool
    _ballast: Path | None = None
    _limit: tuple[int, int] | None = field(default=None, repr=False)
    _sigxfsz: Any = field(default=None, repr=False)
    _binds: list[Path] = field(default_factory=list)

    @property
    def full_words(self) -> str:
        """How the refusals of a full disk are worded (a regex)."""
        return "database or disk is full|No space left" if self.mounted else "disk I/O error|File too large"

    @property
    def read_only_words(self) -> str:
        return "Read-only file system" if self.mounted else "Permission denied|readonly database"

    def fill(self, leave: int) -> None:
        """Leave about ``leave`` bytes writable."""
        if self.mounted:
            stats = os.statvfs(self.path)
            self._ballast = self.path / "ballast"
            remaining = stats.f_bavail * stats.f_frsize - leave
            with open(self._ballast, "wb", buffering=0) as ballast, contextlib.suppress(OSError):
                while remaining > 0:  # the run writes meanwhile, and may take the last bytes first (ENOSPC)
                    remaining -= ballast.write(b"\0" * min(remaining, 1 << 16))
        else:  # no file of this process may grow past `leave` bytes: writes fail with EFBIG
            self._limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            self._sigxfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            resource.setrlimit(resource.RLIMIT_FSIZE, (leave, self._limit[1]))

    def free(self) -> None:
        """What the user does after a full disk: make room."""
        if self._ballast is not None:
            self._ballast.unlink()
            self._ballast = None
        if self._limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)
            signal.signal(signal.SIGXFSZ, self._sigxfsz)
            self._limit = None

    def read_only(self, read_only: bool, directory: Path | None = None) -> None:
        """Make the disk, or one directory on it, read-only (or writable again). A mounted disk with
        files open for writing cannot be remounted read-only: a directory then gets a read-only bind
        mount of itself, as a read-only volume mounted into a container would be."""
        target = directory or self.path
        if not self.mounted:  # not for root, whom permissions do not stop
            for path in [target, *(p for p in target.rglob("*") if p.is_dir())]:
                path.chmod(0o555 if read_only else 0o755)
        elif target == self.path:
            subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(target)], check=True)
        elif read_only:
            subprocess.run(["mount", "--bind", str(target), str(target)], check=True)
            self._binds.append(target)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
        else:
            subprocess.run(["umount", str(target)], check=True)
            self._binds.remove(target)

    def restore(self) -> None:
        """Writable, with room, unmounted: the end of every test."""
        self.free()
        for bind in reversed(self._binds):
            subprocess.run(["umount", str(bind)], check=True)
        self._binds.clear()
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=True)
        else:
            self.read_only(False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 2 MB filesystem at ``tmp_path/disk``, unmounted at the end."""
    path = tmp_path / "disk"
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True)
    disk = SmallDisk(path, mounted=mount.returncode == 0)
    try:
        yield disk
    finally:
        disk.restore()


def start_sweep(client: sora_nb.Client, run_dir: Path, prompts: list[str]) -> sora_nb.Run:
    """A sweep started in ``run_dir``, returned once its rows are in the ledger (the disk then fails)."""
    run = client.sweep(prompt=prompts).start(run_dir=run_dir)
    wait_for(lambda: len(ledger_rows(run_dir)) == len(prompts), what="the ledger rows")
    return run


def wait_error(run: sora_nb.Run, timeout: float = 60) -> BaseException | None:
    """What ``run.wait()`` raised, or None."""
    try:
        run.wait(timeout=timeout)
    except sora_nb.SoraError as exc:
        return exc
    return None


def check_ended_with_reasons(run: sora_nb.Run) -> list[sora_nb.Job]:
    """Every job ended (completed with its file, or failed saying why); returns those ended by storage."""
    statuses = {job.id: job.status for job in run}
    assert all(job.done for job in run) and set(statuses.values()) <= {"completed", "failed"}, run.counts()
    for job in run:
        if job.status == "completed":
            assert job.video_path is not None and job.video_path.is_file(), f"{job.id} completed without its file"
            assert sha256_file(job.video_path) == job._record.checksum
        else:
            assert job.error is not None and job.error.code == "storage_error", (job.id, job.error)
    return [job for job in run if job.status == "failed"]


def resume_and_finish(run_dir: Path, transport: SimulatorTransport, jobs: int) -> None:
    """After the fix: resume completes every job, each made once on the server."""
    resumed = sora_nb.resume(run_dir, client=sora_nb.connect("simulator", run_root=run_dir.parent,
                                                             transport=transport, poll_policy=FAST_POLLS))
    try:
        assert resumed.wait(timeout=60).counts() == {"completed": jobs}
    finally:
        resumed.close()
    audit = transport.audit()
    assert len(audit) == jobs  # no duplicate create
    rows = ledger_rows(run_dir)
    assert sorted(row.remote_id or "" for row in rows) == sorted(entry["id"] for entry in audit)
    for row in rows:
        assert row.status == "completed" and row.video_path and row.thumbnail_path
        assert sha256_file(run_dir / row.video_path) == row.checksum


@pytest.mark.slow
def test_a_full_disk_ends_every_job_with_its_reason_and_resume_completes_them(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """Before: run.wait() returned with no error, 9-16 of 20 jobs 'completed' without a file and the rest
    left in_progress/queued/pending_submit, no error on any row. After: every job completed with its file
    or failed with storage_error, wait() raises StorageError with the fix, and after freeing space resume
    makes each job exactly once."""
    jobs = 20
    server = SimulatorTransport(SimulatorConfig(seed=8, time_scale=0.004))
    run_dir = small_disk.path / "run"
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        run = start_sweep(client, run_dir, [f"a full disk scene {i}" for i in range(jobs)])
        small_disk.fill(leave=400_000)
        error = wait_error(run)
        failed = check_ended_with_reasons(run)
        assert failed, run.counts()
        assert isinstance(error, sora_nb.StorageError), error
        assert str(run_dir) in str(error) and f"sora_nb.resume({str(run_dir)!r})" in str(error)
        assert "Fix: free space" in str(error) and len(error.jobs) == len(failed)
        with pytest.raises(sora_nb.JobFailedError, match=r"storage_error: .*Fix: free space") as info:
            failed[0].wait(timeout=1)
        assert "job.retry()" not in str(info.value)  # the request was fine: retrying it would pay again
        assert len(server.audit()) <= jobs
        small_disk.free()
    resume_and_finish(run_dir, server, jobs)


def test_after_a_full_disk_resume_in_the_same_process_takes_the_run_over(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """The notebook case: wait() says to free space and resume; doing just that, in the same kernel,
    works without closing anything first."""
    server = SimulatorTransport(SimulatorConfig(seed=9, time_scale=0.004))
    run_dir = small_disk.path / "run"
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        run = start_sweep(client, run_dir, ["one", "two", "three", "four"])
        small_disk.fill(leave=0)
        assert isinstance(wait_error(run), sora_nb.StorageError)
        check_ended_with_reasons(run)
        too_soon = sora_nb.resume(run_dir, client=client)  # the disk still refuses, and says so again
        with pytest.raises(sora_nb.StorageError, match=rf"({small_disk.full_words}).*Fix: free space"):
            too_soon.wait(timeout=60)
        check_ended_with_reasons(too_soon)
        small_disk.free()
        resumed = sora_nb.resume(run_dir, client=client)
        assert resumed.wait(timeout=60).counts() == {"completed": 4}
    assert len(server.audit()) == 4


def test_a_videos_directory_that_turns_read_only_fails_downloads_with_the_reason_and_resumes(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """Downloads refused by a read-only directory (the ledger still writable): each job ends failed with
    storage_error, none completed without its file; a run on a read-only disk cannot be resumed (refused
    up front, saying why); made writable again, resume downloads the videos the server made, creating none."""
    jobs = 6
    server = SimulatorTransport(SimulatorConfig(seed=10, time_scale=0.01))
    run_dir = small_disk.path / "run"
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        run = start_sweep(client, run_dir, [f"a read-only scene {i}" for i in range(jobs)])
        small_disk.read_only(True, run_dir / "videos")
        error = wait_error(run)
        assert len(check_ended_with_reasons(run)) == jobs
        assert isinstance(error, sora_nb.StorageError) and re.search(small_disk.read_only_words, str(error))
        assert all(job.remote_id for job in run)  # made on the server, so resume will download them
    assert len(server.audit()) == jobs
    small_disk.read_only(False, run_dir / "videos")

    small_disk.read_only(True)
    assert set(sora_nb.load_run(run_dir)["error_code"]) == {"storage_error"}  # readers need no write
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server) as other, \
            pytest.raises(sora_nb.StorageError, match=rf"({small_disk.read_only_words}).*Fix:"):
        sora_nb.resume(run_dir, client=other)
    small_disk.read_only(False)
    resume_and_finish(run_dir, server, jobs)


def test_a_sweep_into_a_read_only_directory_is_refused_before_anything_is_sent(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    server = SimulatorTransport(SimulatorConfig(seed=12, time_scale=0.004))
    small_disk.read_only(True)
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server) as client:
        sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"])
        refused = rf"could not write.*({small_disk.read_only_words}).*Fix:.*start it again"
        with pytest.raises(sora_nb.StorageError, match=refused):
            sweep.start(run_dir=small_disk.path / "run")
    assert server.audit() == []


def test_a_sweep_started_on_a_full_disk_is_refused_before_anything_is_sent(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    """No room for the ledger: no row, so nothing may be sent (ledger first): start() says why at once.
    Once there is room, the same run directory starts cleanly."""
    server = SimulatorTransport(SimulatorConfig(seed=13, time_scale=0.004))
    small_disk.fill(leave=0)
    with sora_nb.connect("simulator", run_root=tmp_path, transport=server, poll_policy=FAST_POLLS) as client:
        sweep = client.sweep(prompt=["a corgi surfing", "a cat skiing"])
        with pytest.raises(sora_nb.StorageError, match=rf"could not write the ledger in .*: ({small_disk.full_words})"
                                                       r"\. Fix: free space .* start it again: nothing was sent"):
            sweep.start(run_dir=small_disk.path / "run")
        assert server.audit() == []
        small_disk.free()
        assert sweep.start(run_dir=small_disk.path / "run").wait(timeout=30).counts() == {"completed": 2}
    assert len(server.audit()) == 2


# ---------------------------------------------------------------------- a paid video's download outlasts a bad spell
class _ContentFailsFor(httpx.AsyncBaseTransport):
    """The simulator, whose ``/content`` route answers 500 ``failures`` times running (then as usual)."""

    def __init__(self, failures: int) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=3, time_scale=FAST, max_side=32, fps=4))
        self.left = failures
        self.content_requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/content"):
            self.content_requests += 1
            if self.left > 0:
                self.left -= 1
                return httpx.Response(500, json={"error": {"message": "busy", "type": "server_error", "code": None,
                                                           "param": None}})
        return await self.inner.handle_async_request(request)


def test_a_paid_videos_download_keeps_trying_through_a_bad_spell_like_a_poll(tmp_path: Path) -> None:
    """Before: a completed (paid) video whose download met 6 server errors in a row (one retry round) ended the
    job ``failed``, and the advised ``retry()`` paid again; under the simulator's error rate 0.3, 1 of 30 jobs in
    about one sweep in four. Now the download is tried again as polls are, and the job completes, created once."""
    flaky = _ContentFailsFor(failures=14)
    with sora_nb.connect("simulator", run_root=tmp_path, transport=flaky, retry=QUICK, time_scale=FAST) as client:
        job = client.generate("a slow download")
        job.wait(timeout=60)
        assert job.status == "completed" and job.video_path is not None and job.video_path.stat().st_size > 0
    assert len(flaky.inner.audit()) == 1
    assert flaky.content_requests > 14
