"""A pool of backends (issue 11), attacked: each figure is counted at each simulator's own audit of the creates
it accepted, never in the client.

A pool spreads jobs by each backend's room; loses nothing when one backend starts answering 429 or goes down
mid-run; never re-sends elsewhere a create whose answer was lost (it may have been made: DESIGN.md invariant 3);
keeps a remix on the backend that made its source; and resumes each job on its own backend.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FAST, wait_for

import sora_nb
from sora_nb._ledger import Ledger
from sora_nb._polling import PollPolicy
from sora_nb._pool import Pool
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

POLLS = PollPolicy(floor=0.01, ceiling=0.2, first=0.02)
QUICK = sora_nb.RetryPolicy(base=0.01, cap=0.05)


class Switch(httpx.AsyncBaseTransport):
    """A simulator in front of which a fault can be switched on mid-run, as a backend going bad would.

    ``mode``: ``None`` (healthy); ``"429"`` (every create refused with a 429, nothing made; polls still
    answered); ``"down"`` (no connection can be made: nothing reaches the server); ``"502"`` (a create is
    made upstream, then answered 502: its answer is lost). ``list_down``: the list route fails too (a 502), so
    a lost create cannot be searched for. ``after``: the fault starts after this many accepted creates.
    """

    def __init__(self, seed: int, **config: Any) -> None:
        self.inner = SimulatorTransport(SimulatorConfig(seed=seed, time_scale=FAST, max_side=32, fps=4, **config))
        self.mode: str | None = None
        self.after: int | None = None
        self.list_down = False
        self.refused = 0
        self.retry_after = "0.05"
        self.headers: dict[str, str] = {}
        """Added to every answer (e.g. rate-limit headers)."""

    def audit(self) -> list[dict[str, Any]]:
        return self.inner.audit()

    def _fault(self) -> str | None:
        if self.after is not None and len(self.audit()) >= self.after:
            self.mode, self.after = self.pending, None
        return self.mode

    def fail_after(self, creates: int, mode: str) -> None:
        self.pending, self.after = mode, creates

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        mode = self._fault()
        is_create = request.method == "POST" and request.url.path.rstrip("/").endswith("/videos")
        if mode == "down":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if mode == "429" and is_create:
            self.refused += 1
            return httpx.Response(429, headers={"retry-after": self.retry_after},
                                  json={"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
        if self.list_down and request.method == "GET" and request.url.path.rstrip("/").endswith("/videos"):
            return httpx.Response(502, json={"error": {"message": "Bad Gateway"}})
        response = await self.inner.handle_async_request(request)
        response.headers.update(self.headers)
        if mode == "502" and is_create:
            await response.aread()
            return httpx.Response(502, json={"error": {"message": "Bad Gateway"}})
        return response

    async def aclose(self) -> None:
        """The server outlives its clients (a client closing is not the server stopping): the fixture stops it."""


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[dict[str, Switch]]:
    switches: dict[str, Switch] = {}
    yield switches
    for switch in switches.values():
        switch.inner.state.close()


def _pool(tmp_path: Path, switches: dict[str, Switch], **backends: tuple[int, dict[str, Any]]) -> Pool:
    """A pool of simulators, each ``name=(max_concurrency, simulator options)``, seeded apart (ids differ)."""
    clients = {}
    for seed, (name, (concurrency, options)) in enumerate(backends.items(), start=1):
        switches[name] = switch = Switch(seed * 101, **options)
        clients[name] = sora_nb.connect("simulator", transport=switch, max_concurrency=concurrency,
                                        run_root=tmp_path / "runs", poll_policy=POLLS, retry=QUICK)
        clients[name].api.list_settle = 0.02  # the simulator lists a job the moment it is made
    return sora_nb.pool(**clients)


def _creates(switches: dict[str, Switch]) -> dict[str, list[str]]:
    return {name: [entry["id"] for entry in switch.audit()] for name, switch in switches.items()}


def _exactly_one_create_per_job(run: sora_nb.Run, switches: dict[str, Switch]) -> dict[str, int]:
    """Every job's video was created once, on the backend its row names; nothing else was created anywhere."""
    creates = _creates(switches)
    everywhere = [remote_id for ids in creates.values() for remote_id in ids]
    assert len(everywhere) == len(set(everywhere)) == len(run.jobs)
    with Ledger.open(run.run_dir, readonly=True) as ledger:
        rows = ledger.jobs()
    for row in rows:
        assert row.backend is not None and row.remote_id in creates[row.backend], row
    return {name: len(ids) for name, ids in creates.items()}


def test_a_pool_spreads_60_jobs_by_each_backends_room(tmp_path: Path, backends: dict[str, Switch]) -> None:
    """Three backends: 6 places and no rate limit; 4 places and 15 requests a (scaled) minute; 2 places and 5 (every
    request counts, polls too, and 429s answer the rest). A round robin would give 20/20/20; by room the wide one
    takes the most, the tightest the fewest, and each job is created exactly once.

    The rate limits are counted in the simulator's scaled minutes, so they bind less on a slow machine (each job
    takes longer in wall time): under two busy loops a tight backend with 4 places took 16 jobs to the wide one's
    27. Its 2 places keep the order whatever the machine's speed (measured: 32-36 / 19-22 / 5-6 quiet, 30-33 / 19-21 /
    8-9 under three busy loops)."""
    with _pool(tmp_path, backends, wide=(6, {}), mid=(4, {"rate_limit_rpm": 15}),
               tight=(2, {"rate_limit_rpm": 5})) as team:
        run = team.sweep(prompt=[f"shot {i}" for i in range(20)], repeats=3).start()
        run.wait(timeout=300)
        assert run.counts() == {"completed": 60}
        per_backend = _exactly_one_create_per_job(run, backends)
        df = run.to_dataframe()
    print("creates per backend:", per_backend)
    assert per_backend["wide"] > per_backend["mid"] > per_backend["tight"] >= 1
    assert per_backend["wide"] >= 2 * per_backend["tight"]
    assert Counter(df["backend"]) == per_backend
    assert sum(per_backend.values()) == 60


def test_a_backend_that_starts_answering_429_loses_nothing(tmp_path: Path, backends: dict[str, Switch]) -> None:
    """After its 5th create the backend with the most places refuses every create with a 429 (which makes
    nothing), and keeps looking like the roomiest whenever the two small ones are full: its refused jobs move to
    the others (again and again, each refusal certainly made nothing), its jobs already made finish there, none
    fails, and every job is created exactly once."""
    with _pool(tmp_path, backends, a=(2, {}), b=(8, {}), c=(2, {})) as team:
        backends["b"].fail_after(5, "429")
        run = team.sweep(prompt=[f"shot {i}" for i in range(20)], repeats=3).start()
        run.wait(timeout=300)
        assert run.counts() == {"completed": 60}
        per_backend = _exactly_one_create_per_job(run, backends)
    print("creates per backend:", per_backend, "429s answered by b:", backends["b"].refused)
    assert per_backend["b"] == 5 and backends["b"].refused >= 1
    assert per_backend["a"] + per_backend["c"] == 55


def test_a_backend_that_goes_down_mid_run_loses_nothing(tmp_path: Path, backends: dict[str, Switch]) -> None:
    """After its 5th create one backend takes no connection at all (its jobs already made cannot even be
    polled); it comes back once the others have done 40. Creates that could not connect moved (nothing was sent),
    the 5 made there finish there once it is back: 60 completed, one create each."""
    with _pool(tmp_path, backends, a=(4, {}), b=(4, {}), c=(4, {})) as team:
        backends["b"].fail_after(5, "down")
        run = team.sweep(prompt=[f"shot {i}" for i in range(20)], repeats=3).start()

        def others_made(n: int) -> bool:
            return len(backends["a"].audit()) + len(backends["c"].audit()) >= n

        wait_for(lambda: others_made(40), timeout=120, what="40 creates on the healthy backends")
        assert backends["b"].mode == "down" and len(backends["b"].audit()) == 5
        backends["b"].mode = None  # back up
        run.wait(timeout=300)
        assert run.counts() == {"completed": 60}
        per_backend = _exactly_one_create_per_job(run, backends)
    print("creates per backend:", per_backend)
    assert per_backend["b"] >= 5


@pytest.mark.parametrize("searchable", [True, False], ids=["list-works", "list-down"])
def test_a_create_answered_502_after_it_was_made_is_never_sent_elsewhere(
    tmp_path: Path, backends: dict[str, Switch], searchable: bool
) -> None:
    """Backend ``a`` makes each job, then answers 502 (the answer is lost). With its list working, each is found
    there and adopted; with its list down, each is ``ambiguous`` and stays. Never sent to ``b``, which had all the
    room: a relay that moved it would have paid twice (b's audit would hold a second create of it)."""
    with _pool(tmp_path, backends, a=(4, {}), b=(1, {})) as team:
        backends["a"].mode = "502"
        backends["a"].list_down = not searchable
        run = team.sweep(prompt=["made but lost"], repeats=3, backend="a").start()
        run.wait(timeout=120)
        creates = _creates(backends)
        assert len(creates["a"]) == 3 and creates["b"] == []
        if searchable:
            assert run.counts() == {"completed": 3}
            assert sorted(job.remote_id for job in run.jobs) == sorted(creates["a"])  # type: ignore[type-var]
        else:
            assert run.counts() == {"ambiguous": 3}
            assert all(job.backend == "a" and job._record.attempts == 1 for job in run.jobs)


def test_a_502_on_a_routed_job_keeps_it_on_its_backend(tmp_path: Path, backends: dict[str, Switch]) -> None:
    """Not pinned by a sweep axis, routed by room: a lost answer still keeps the job where it may exist."""
    with _pool(tmp_path, backends, a=(8, {}), b=(1, {})) as team:
        backends["a"].mode, backends["a"].list_down = "502", True
        job = team.generate("made but lost")
        with pytest.raises(sora_nb.JobFailedError, match="ambiguous"):
            job.wait(timeout=60)
        assert job.backend == "a" and len(backends["a"].audit()) == 1 and backends["b"].audit() == []


def test_remixes_and_extensions_stay_on_the_backend_that_made_the_source(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """The source is made on the small backend; the big one has all the room, and would be chosen for a new job,
    but a remix there would 404 (it never saw the source): every remix and extension goes back to the small one."""
    with _pool(tmp_path, backends, small=(1, {}), big=(8, {})) as team:
        source = team.sweep(prompt=["a corgi surfing"], backend="small").start().jobs[0].wait(timeout=60)
        remixes = [source.remix(f"the same corgi, take {i}") for i in range(3)]
        extension = source.extend("the corgi rides the wave to shore", seconds="4")
        for job in [*remixes, extension]:
            job.wait(timeout=60)
            assert job.status == "completed" and job.backend == "small"
        fresh = team.generate("a cat skiing").wait(timeout=60)
        assert fresh.backend == "big"
    kinds = Counter(entry.get("kind", "create") for entry in backends["small"].audit())
    assert len(backends["small"].audit()) == 5 and len(backends["big"].audit()) == 1, kinds


def test_jobs_waiting_for_a_busy_backend_hold_no_place_an_idle_one_could_use(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """Eight jobs pinned to ``a`` (2 places) are queued first; a job for anywhere comes next. It goes to the idle
    ``b`` at once, while ``a`` has made at most a few; a cap over the whole pool (4 places: 2 running on ``a``,
    2 waiting for ``a``) made it wait behind all eight (measured before: ``a`` had made 6 when ``b`` made 1)."""
    with _pool(tmp_path, backends, a=(2, {}), b=(2, {})) as team:
        busy = team.sweep(prompt=[f"shot {i}" for i in range(8)], backend="a").start()
        anywhere = team.generate("a cat skiing")
        wait_for(lambda: backends["b"].audit(), what="the free job's create on b")
        assert len(backends["a"].audit()) <= 4
        assert anywhere.wait(timeout=60).backend == "b"
        busy.wait(timeout=120)


def test_a_pooled_run_resumes_each_job_on_its_own_backend(tmp_path: Path, backends: dict[str, Switch]) -> None:
    """Closed mid-run (a kernel restart, say), then resumed with a pool of the same names: each job is polled
    (or created) where its row says, none is created twice; the ledger holds names, never keys."""
    team = _pool(tmp_path, backends, a=(2, {}), b=(2, {}))
    team.sweep(prompt=[f"shot {i}" for i in range(6)]).start(run_dir=tmp_path / "run")
    wait_for(lambda: sum(len(s.audit()) for s in backends.values()) >= 3, what="some creates")
    team._runtime.run(team._runner.aclose(), timeout=30)  # stop driving; the simulators (and their jobs) live on
    before = {name: set(ids) for name, ids in _creates(backends).items()}

    wrong = sora_nb.pool(a=_reconnect(tmp_path, backends["a"]))
    with pytest.raises(sora_nb.ConfigurationError, match=r"backends 'b'.*lacks"):
        sora_nb.resume(tmp_path / "run", client=wrong)
    wrong.close()
    assert {name: set(ids) for name, ids in _creates(backends).items()} == before  # refused before sending anything

    again = sora_nb.pool(a=_reconnect(tmp_path, backends["a"]), b=_reconnect(tmp_path, backends["b"]))
    resumed = sora_nb.resume(tmp_path / "run", client=again)
    resumed.wait(timeout=120)
    assert resumed.counts() == {"completed": 6}
    _exactly_one_create_per_job(resumed, backends)
    for name, ids in before.items():
        assert ids <= set(_creates(backends)[name])  # those made before the restart were not made again
    again.close()
    meta = json.dumps(Ledger.open(tmp_path / "run", readonly=True).meta())
    assert '"name": "a"' in meta and "sk-" not in meta


def _reconnect(tmp_path: Path, switch: Switch) -> sora_nb.Client:
    client = sora_nb.connect("simulator", transport=switch, run_root=tmp_path / "runs", poll_policy=POLLS, retry=QUICK)
    client.api.list_settle = 0.02
    return client


def test_a_sweep_across_backends_and_its_dataframe(tmp_path: Path) -> None:
    """``backend=None``: the same prompts on every backend, each with its own default model; the DataFrame's
    ``backend`` column stands with the axes; each service's simulator made exactly its own jobs."""
    openai = SimulatorTransport(SimulatorConfig(seed=5, time_scale=FAST, max_side=32, fps=4))
    runs = tmp_path / "runs"
    with sora_nb.pool(
        sora_nb.connect("simulator", transport=openai, run_root=runs, poll_policy=POLLS),
        sora_nb.connect("xai", simulator=True, time_scale=FAST, run_root=runs, poll_policy=POLLS),
    ) as team:
        run = team.sweep(prompt=["a corgi surfing", "a cat skiing"], backend=None).start()
        run.wait(timeout=120)
        df = run.to_dataframe()
        assert list(df.columns[:3]) == ["prompt", "backend", "model"]
        assert sorted(zip(df["backend"], df["model"], strict=True)) == [
            ("simulator", "sora-2"), ("simulator", "sora-2"), ("xai", "grok-imagine-video"),
            ("xai", "grok-imagine-video")]
        assert (df["status"] == "completed").all()
        assert sorted(df.loc[df["backend"] == "simulator", "remote_id"]) == sorted(e["id"] for e in openai.audit())
    openai.state.close()


def test_bad_input_names_the_field_the_allowed_values_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"at least one client.*Fix"):
        sora_nb.pool()
    with pytest.raises(TypeError, match=r"clients made by sora_nb.connect\(\).*Fix"):
        sora_nb.pool(a="sk-not-a-client")  # type: ignore[arg-type]
    client = sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, simulator_state=False)
    with pytest.raises(ValueError, match=r"given twice"):
        sora_nb.pool(client, other=client)
    with sora_nb.pool(client) as team:
        with pytest.raises(sora_nb.ConfigurationError, match=r"'nope' is not in this pool. Allowed: 'simulator'"):
            team.sweep(prompt="a cat", backend=["nope"])
        with pytest.raises(sora_nb.ValidationError, match=r"no backend of this pool takes.*Allowed"):
            team.generate("a cat", model="grok-imagine-video")
        sweep = team.sweep(prompt="a cat", model=["sora-2", "grok-imagine-video"], repeats=2)
        assert [job.model for job in sweep.jobs] == ["sora-2", "sora-2"]
        (refused,) = sweep.estimate().invalid_combos
        # Refused at planning by the pool's capabilities (the union of its backends'), naming the model.
        assert refused.field == "model" and "model='grok-imagine-video' is not served" in refused.message
        assert refused.allowed == ("sora-2", "sora-2-pro")
        with pytest.raises(sora_nb.ConfigurationError, match=r"pool.backends\[name\].api"):
            team.api  # noqa: B018


def test_a_pooled_run_of_two_services_resumes_without_a_client(tmp_path: Path) -> None:
    """Two services' simulators, each keeping its jobs on disk; the pool is closed mid-run, then
    ``sora_nb.resume(run_dir)`` alone makes the pool again from the ledger's names (no key stored) and
    finishes every job on its own service, each created once (counted in each simulator's own state on disk)."""
    from sora_nb.simulator import read_audit

    runs = tmp_path / "runs"
    team = sora_nb.pool(
        openai=sora_nb.connect("simulator", time_scale=FAST, run_root=runs, simulator_state=tmp_path / "sa"),
        grok=sora_nb.connect("xai", simulator=True, time_scale=FAST, run_root=runs, simulator_state=tmp_path / "sb"),
    )
    run = team.sweep(prompt=[f"shot {i}" for i in range(3)], backend=None).start(run_dir=tmp_path / "run")
    wait_for(lambda: len(read_audit(tmp_path / "sa")) + len(read_audit(tmp_path / "sb", "xai")) >= 2,
             what="some creates")
    team.close()
    assert run.counts().get("completed", 0) < 6  # stopped mid-run

    resumed = sora_nb.resume(tmp_path / "run")
    try:
        resumed.wait(timeout=120)
        assert resumed.counts() == {"completed": 6}
        rows = {job.backend: sorted(j.remote_id or "" for j in resumed.jobs if j.backend == job.backend)
                for job in resumed.jobs}
    finally:
        resumed.close()
    assert rows["openai"] == sorted(entry["id"] for entry in read_audit(tmp_path / "sa"))
    # The xAI dialect hands out its own form of the simulator's id (a UUID for video_<hex>).
    assert [i.replace("-", "") for i in rows["grok"]] == sorted(
        entry["id"].removeprefix("video_") for entry in read_audit(tmp_path / "sb", "xai"))


def test_a_pool_of_two_keys_of_one_service_is_not_resumed_with_one_key_from_the_environment(tmp_path: Path) -> None:
    """Several keys of one service are several clients; a run stores none of them, so resuming needs the pool."""
    meta = {"profile": "pool", "backends": [{"name": "k1", "profile": "xai"}, {"name": "k2", "profile": "xai"}]}
    with Ledger.create(tmp_path / "run", meta=meta):
        pass
    with pytest.raises(sora_nb.ConfigurationError, match=r"several keys of 'xai'.*client=sora_nb.pool\(k1="):
        sora_nb.resume(tmp_path / "run")


def test_the_widgets_work_on_a_pool_and_the_progress_shows_each_backends_load(tmp_path: Path) -> None:
    """The prompt box offers every backend's models and generates through the pool; the sweep builder's
    progress shows the jobs per backend, matching what each simulator made."""
    pytest.importorskip("ipywidgets")
    from sora_nb import ui

    openai = SimulatorTransport(SimulatorConfig(seed=5, time_scale=FAST, max_side=32, fps=4))
    runs = tmp_path / "runs"
    team = sora_nb.pool(
        sora_nb.connect("simulator", transport=openai, run_root=runs, poll_policy=POLLS),
        sora_nb.connect("xai", simulator=True, time_scale=FAST, run_root=runs, poll_policy=POLLS,
                        simulator_state=False),
    )
    box = ui.prompt(team)
    builder = ui.sweep(team, prompts=[f"shot {i}" for i in range(6)])
    try:
        assert {"sora-2", "grok-imagine-video"} <= set(box.model.options)
        box.prompt.value, box.model.value = "a corgi surfing", "grok-imagine-video"
        assert box.generate().wait(timeout=60).backend == "xai"
        run = builder.launch()
        run.wait(timeout=120)
        progress = builder.progress
        assert progress is not None
        made = Counter(job.backend for job in run.jobs)
        expected = " · ".join(f"{name} {n} done" for name, n in made.items())
        wait_for(lambda: progress.backends.value == f"per backend: {expected}", what="the per-backend counts")
        assert made["simulator"] == len(openai.audit()) and set(made) <= {"simulator", "xai"}
    finally:
        box.close()
        builder.close()
        team.close()
        openai.state.close()


@pytest.mark.slow
def test_a_backend_server_killed_mid_run_and_restarted_loses_nothing(tmp_path: Path) -> None:
    """Two ``sora-nb simulator`` processes on loopback ports; ``b`` (3 places, slow jobs) is SIGKILLed once it has
    made 3 jobs, while they run, and started again on its port once ``a`` has made 8, with the jobs it keeps on
    disk. Meanwhile every other job goes to ``a``; the 3 made on ``b`` are polled there (through refused
    connections) until it is back, and finish there: 16 completed, each created once, counted in each server's
    own audit. (Creates refused by a backend that is down are moved: test_a_backend_that_goes_down_mid_run...)"""
    import signal

    from fault_support import FAST_POLLS, TEST_KEY, loopback_simulators

    state = tmp_path / "b-state"
    with loopback_simulators(tmp_path) as start:
        a = start("--seed", "31", "--time-scale", "0.01")
        b = start("--seed", "47", "--time-scale", "0.05", "--state-dir", str(state))

        def client(base_url: str) -> sora_nb.Client:
            return sora_nb.connect("openai-compatible", base_url=base_url, api_key=TEST_KEY, max_concurrency=3,
                                   run_root=tmp_path / "runs", poll_policy=FAST_POLLS, retry=QUICK)

        with sora_nb.pool(a=client(a.base_url), b=client(b.base_url)) as team:
            run = team.sweep(prompt=[f"shot {i}" for i in range(8)], repeats=2).start()
            wait_for(lambda: len(b.audit()) >= 3, timeout=60, what="3 creates on b")
            b.process.send_signal(signal.SIGKILL)
            b.process.wait(10)
            made_on_b = {job.remote_id for job in run.jobs if job.backend == "b" and job.remote_id}
            wait_for(lambda: len(a.audit()) >= 8, timeout=60, what="jobs moved to a while b is down")
            b = start("--seed", "47", "--time-scale", "0.05", "--state-dir", str(state), port=b.port)
            run.wait(timeout=180)
            assert run.counts() == {"completed": 16}
            rows = {job.remote_id: job.backend for job in run.jobs}
        creates = {"a": [e["id"] for e in a.audit()], "b": [e["id"] for e in b.audit()]}
    print("creates per backend:", {name: len(ids) for name, ids in creates.items()})
    assert sorted(rows) == sorted(creates["a"] + creates["b"])  # 16 videos, 16 creates, none twice
    assert all(rows[remote_id] == name for name, ids in creates.items() for remote_id in ids)
    assert made_on_b <= set(creates["b"]) and len(creates["b"]) >= 3
    assert all(job._record.attempts == 1 for job in run.jobs)


def test_a_job_card_follows_the_backend_its_job_went_to(tmp_path: Path) -> None:
    """The pool as a whole can remix (its OpenAI backend can); a job it sent to Gemini cannot be remixed there,
    and its card says so once the job is routed, and says where it went."""
    pytest.importorskip("ipywidgets")
    from sora_nb import ui

    runs = tmp_path / "runs"
    with sora_nb.pool(
        sora_nb.connect("simulator", time_scale=FAST, run_root=runs, simulator_state=False, poll_policy=POLLS),
        sora_nb.connect("gemini", simulator=True, time_scale=FAST, run_root=runs, simulator_state=False,
                        poll_policy=POLLS),
    ) as team:
        assert team.profile.capabilities.supports_remix
        job = team.generate("a corgi surfing", model="veo-3.1-fast-generate-preview", size="1280x720", seconds="4")
        card = ui.card(job)
        try:
            job.wait(timeout=60)
            wait_for(lambda: "on gemini" in card.status.value, what="the backend on the card")
            assert card.remix_button.disabled and "'gemini' server cannot remix" in card.remix_button.tooltip
        finally:
            card.close()


def test_a_pooled_jobs_estimate_is_its_backends_price(tmp_path: Path) -> None:
    """Two keys of one service on different price plans: the pool's estimate at submit is its first backend's
    price, and once a job is routed its row holds the price of the backend it went to."""
    from dataclasses import replace

    clients = {}
    for name, price in (("cheap", 0.1), ("dear", 0.5)):
        clients[name] = client = sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path,
                                                 simulator_state=False, poll_policy=POLLS)
        caps = client.profile.capabilities
        models = {**(caps.models or {}), "sora-2": replace((caps.models or {})["sora-2"], usd_per_second=price)}
        client.profile = replace(client.profile, capabilities=replace(caps, models=models))
    with sora_nb.pool(**clients) as team:
        run = team.sweep(prompt="a corgi surfing", seconds="4", backend=None).start().wait(timeout=60)
        df = run.to_dataframe().set_index("backend")
    assert df.loc["cheap", "estimated_cost_usd"] == pytest.approx(0.4)
    assert df.loc["dear", "estimated_cost_usd"] == pytest.approx(2.0)


def test_two_backends_whose_remote_ids_collide_each_keep_their_own_jobs(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """Red team: two servers are free to hand out the same ids (here two simulators of one seed: their n-th
    videos are both ``video_<same>``). A remote id is unique per backend, not across a pool: each job is made
    once on its backend, completes with its own backend's video, and a remix goes to the backend of its source."""
    clients = {}
    for name in ("a", "b"):
        backends[name] = switch = Switch(7)  # the same seed: the same ids in the same order
        clients[name] = sora_nb.connect("simulator", transport=switch, max_concurrency=1,
                                        run_root=tmp_path / "runs", poll_policy=POLLS, retry=QUICK)
    with sora_nb.pool(**clients) as team:
        run = team.sweep(prompt=["a fox", "a hen"], backend=None).start()
        run.wait(timeout=120)
        assert run.counts() == {"completed": 4}, [(j.backend, j.status, j._record.error_message) for j in run.jobs]
        creates = _creates(backends)
        assert creates["a"] == creates["b"] and len(creates["a"]) == 2  # the ids did collide, one create each
        for job in run.jobs:  # each row holds its own backend's video (its prompt is in the simulator's frames)
            assert job.remote_id in creates[str(job.backend)] and job.video_path is not None
        on_b = next(job for job in run.jobs if job.backend == "b" and job.prompt == "a hen")
        remix = on_b.remix("the hen, in the rain")
        remix.wait(timeout=60)
        assert remix.status == "completed" and remix.backend == "b"
    assert len(backends["a"].audit()) == 2 and len(backends["b"].audit()) == 3


@pytest.mark.slow
def test_jobs_of_one_run_for_an_idle_backend_do_not_wait_behind_its_jobs_pinned_to_a_busy_one(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """One run: twelve remixes of a video made on ``small`` (1 place), then a new video that any backend
    makes. The new one goes to the idle ``big`` at once, and every remix is made on ``small``, once, as a
    place there frees. The run's cap (the pool's 5 places) used to fill with remixes waiting for ``small``,
    as tasks: the new video waited behind them (measured before: ``small`` had made 9 when ``big`` made 1)."""
    with _pool(tmp_path, backends, small=(1, {}), big=(4, {})) as team:
        source = team.sweep(prompt=["a corgi surfing"], backend="small").start().jobs[0].wait(timeout=60)
        remixes = [source.remix(f"the same corgi, take {i}") for i in range(12)]
        anywhere = source.run.submit([team._job_spec("a cat skiing")])[0]
        wait_for(lambda: backends["big"].audit(), what="the new video's create on big")
        assert len(backends["small"].audit()) <= 1 + 2  # the source, and the remix or two made meanwhile
        assert anywhere.wait(timeout=60).backend == "big"
        for job in remixes:
            assert job.wait(timeout=120).backend == "small"
    assert len(backends["small"].audit()) == 13 and len(backends["big"].audit()) == 1


def test_jobs_waiting_for_a_busy_backend_are_queue_entries_not_tasks(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """A run allowed 300 jobs at once, all of them for ``a`` (2 places): while ``a`` makes two, the other 298
    wait as entries of the run's queue, with no task each (before: 598 tasks, two a job, each job woken by every
    job's end to look at ``a`` again; about 6 kB more a waiting job, traced over 2,000)."""
    with _pool(tmp_path, backends, a=(2, {}), b=(2, {})) as team:
        loop = team._runtime.loop
        idle = team._runtime.call_and_wait(lambda: len(asyncio.all_tasks(loop)))
        run = team.sweep(prompt=[f"shot {i}" for i in range(300)], backend="a").start(max_concurrency=300)
        wait_for(lambda: backends["a"].audit(), what="a's first create")
        tasks = team._runtime.call_and_wait(lambda: len(asyncio.all_tasks(loop))) - idle
        assert tasks <= 2 + 4, tasks  # a's two jobs, and what they wait on
        run.cancel()
    assert len(backends["a"].audit()) <= 4 and backends["b"].audit() == []


@pytest.mark.slow
def test_jobs_for_a_backend_whose_gate_is_closed_wait_in_its_queue(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """``a`` refuses every create with a 429 (each closes its gate for a moment, then it opens again), several
    times over: the 12 jobs pinned to it wait as queue entries, the refused ones keeping their places there as
    they wait, and once it makes videos again each is made there exactly once. Before, all 12 were let in at
    once to wait as tasks (26 tasks at the 6th refusal); counting only the jobs in flight on ``a``, two more came
    at each opening of its gate (62 tasks for 30 jobs)."""
    with _pool(tmp_path, backends, a=(2, {}), b=(2, {})) as team:
        backends["a"].mode, backends["a"].retry_after = "429", "0.2"
        loop = team._runtime.loop
        idle = team._runtime.call_and_wait(lambda: len(asyncio.all_tasks(loop)))
        run = team.sweep(prompt=[f"shot {i}" for i in range(12)], backend="a").start(max_concurrency=12)
        wait_for(lambda: backends["a"].refused >= 6, what="a's refusals, over several openings of its gate")
        tasks = team._runtime.call_and_wait(lambda: len(asyncio.all_tasks(loop))) - idle
        assert tasks <= 2 * 3, tasks  # the two refused jobs, and what each waits on (the gate, a change)
        backends["a"].mode = None
        run.wait(timeout=120)
        assert run.counts() == {"completed": 12}
        assert _exactly_one_create_per_job(run, backends) == {"a": 12, "b": 0}


@pytest.mark.slow
def test_jobs_pinned_to_an_idle_backend_whose_rate_budget_ran_out_start_once_it_is_reset(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """``a``'s answers say its request budget is spent and comes back in 0.2 s (``x-ratelimit-remaining-requests:
    0``, as OpenAI sends): its gate closes for 0.2 s, then opens. Its 3 pinned jobs are made there one by one,
    each once. The budget its last answer named was weighed for ever (0 left: no room), and an idle ``a`` sends
    nothing that would say it is whole again: before, 1 job made, 2 waiting for good (``run.wait`` timed out)."""
    with _pool(tmp_path, backends, a=(1, {}), b=(1, {})) as team:
        backends["a"].headers = {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0",
                                 "x-ratelimit-reset-requests": "0.2s"}
        run = team.sweep(prompt=[f"shot {i}" for i in range(3)], backend="a").start()
        run.wait(timeout=20)
        assert run.counts() == {"completed": 3}
        assert _exactly_one_create_per_job(run, backends) == {"a": 3, "b": 0}


def test_jobs_pinned_to_a_backend_closed_for_long_wait_cancel_and_close_cleanly(
    tmp_path: Path, backends: dict[str, Switch]
) -> None:
    """``a`` refuses with a 429 that says to come back in an hour: its 4 pinned jobs wait (one refused, holding its
    place there; three queued). ``run.wait(timeout)`` still returns at its bound; a cancel from this thread ends
    every one cancelled, saying so, with nothing made and the place given back; closing leaves no timer behind
    that would look at ``a`` again."""
    with _pool(tmp_path, backends, a=(1, {}), b=(1, {})) as team:
        backends["a"].mode, backends["a"].retry_after = "429", "3600"
        run = team.sweep(prompt=[f"shot {i}" for i in range(4)], backend="a").start()
        wait_for(lambda: backends["a"].refused, what="a's refusal")
        started = time.monotonic()
        with pytest.raises(sora_nb.JobTimeoutError, match="4 of 4 jobs still running"):
            run.wait(timeout=0.3)
        assert time.monotonic() - started < 5
        run.cancel()
        assert {job.status for job in run.jobs} == {"cancelled"}
        assert all(job.error and job.error.message for job in run.jobs)
        runner, loop = team._runner, team._runtime.loop
        assert team._runtime.call_and_wait(lambda: runner.load("a").in_flight) == 0

        def reopening() -> list[asyncio.TimerHandle]:
            scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
            return [h for h in scheduled if not h.cancelled() and "_reopened" in repr(h)]

        assert len(team._runtime.call_and_wait(reopening)) == 1  # a's opening, in an hour
    assert backends["a"].refused == 1 and _creates(backends) == {"a": [], "b": []}
    assert team._runtime.call_and_wait(reopening) == []



def test_a_run_started_from_a_thread_while_the_loop_gives_out_places_breaks_no_other_run(
    tmp_path: Path, backends: dict[str, Switch], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sweeps started back to back from the user's thread on one pool: a run is added to the runner's runs (on that
    thread) while the loop goes through them to give out places. "dictionary changed size during iteration" then
    broke the loop's start of another run, whose jobs waited for good (seen in 3 of 3 tries of 8 sweeps started
    at once: 9 of a run's 10 jobs never started). Here that moment is made every time: the first look at ``a``'s
    queue lets a thread start driving another run."""
    from sora_nb._pool import PoolRunner

    with _pool(tmp_path, backends, a=(1, {}), b=(1, {})) as team:
        runner = team._runner
        other = sora_nb.Run(runner, tmp_path / "other", axes=("prompt",), meta={})  # not driven yet
        lane_free = PoolRunner._lane_free
        claimed: list[threading.Thread] = []

        def meanwhile_a_thread_claims_another_run(self: PoolRunner, lane: str) -> bool:
            if not claimed:
                claimed.append(threading.Thread(target=runner.claim, args=(other,)))
                claimed[0].start()
                claimed[0].join(10)
            return lane_free(self, lane)

        monkeypatch.setattr(PoolRunner, "_lane_free", meanwhile_a_thread_claims_another_run)
        run = team.sweep(prompt=[f"shot {i}" for i in range(3)], backend="a").start()
        run.wait(timeout=20)  # before: JobTimeoutError, 2 of 3 jobs never started
        assert run.counts() == {"completed": 3}
    assert _exactly_one_create_per_job(run, backends) == {"a": 3, "b": 0}
