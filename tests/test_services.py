"""fal, Replicate and Runway: their adapters against hostile answers of their simulator dialects, counted
at the simulator's audit (one create per job, whatever the service answered).

Honest about the source: nothing here talks to fal, Replicate or Runway. The dialects follow each
service's documentation and official client (``sora_nb/simulator/dialects/{fal,replicate,runway}.py``);
the hostile answers are the documented awkward ones (a ``COMPLETED`` fal request that carries an error, a
Replicate output deleted after its hour, Runway's ``THROTTLED``) plus a 502 after a create was accepted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FAST, FakeClock, SimulatedClients, write_image

import sora_nb
from sora_nb import PROFILES
from sora_nb._profiles import simulator_base_url
from sora_nb.providers import FalClient, ReplicateClient, RunwayClient, make_client
from sora_nb.providers import fal as fal_adapter
from sora_nb.providers import replicate as replicate_adapter
from sora_nb.providers import runway as runway_adapter
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

NEW = ("fal", "replicate", "runway")
Rewrite = Callable[[httpx.Request, Any], Any]


class HostileTransport(SimulatorTransport):
    """The in-process simulator, with each JSON answer passed through ``rewrite`` (the service saying
    something awkward), every request and JSON answer noted, and ``fail_creates`` creates answered 502
    after the simulator accepted (and audited) them."""

    def __init__(self, config: SimulatorConfig, *, rewrite: Rewrite | None = None, fail_creates: int = 0,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(config, clock=clock)
        self.rewrite = rewrite
        self.fail_creates = fail_creates
        self.seen: list[tuple[str, str, str, Any]] = []  # method, host, path, JSON answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        dialect = self.app.dialect
        if request.method == "POST" and dialect.is_create("POST", request.url.path) and self.fail_creates:
            self.fail_creates -= 1
            await response.aread()
            return httpx.Response(502, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"})
        if not response.headers.get("content-type", "").startswith("application/json"):
            self.seen.append((request.method, request.url.host, request.url.path, None))
            return response
        data = json.loads(await response.aread())
        if self.rewrite is not None:
            data = self.rewrite(request, data)
        self.seen.append((request.method, request.url.host, request.url.path, data))
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, json=data)


def sim(dialect: str, **options: Any) -> SimulatorConfig:
    return SimulatorConfig(**{"seed": 5, "time_scale": FAST, "max_side": 48, "fps": 4, "dialect": dialect, **options})


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Any]:
    """``connect(profile, rewrite=..., fail_creates=..., **config)``: a client on the profile's hostile dialect."""
    clients = SimulatedClients(tmp_path)

    def make(profile: str, *, rewrite: Rewrite | None = None, fail_creates: int = 0,
             clock: Callable[[], float] | None = None, **options: Any) -> tuple[sora_nb.Client, HostileTransport]:
        transport = HostileTransport(sim(PROFILES[profile].dialect, **options), rewrite=rewrite,
                                     fail_creates=fail_creates, clock=clock)
        return clients.connect(profile, transport), transport

    yield make
    clients.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ---------------------------------------------------------------------------- pure translation tables


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "IN_QUEUE", "queue_position": 0}, "queued"),
    ({"status": "IN_PROGRESS", "logs": []}, "in_progress"),
    ({"status": "COMPLETED", "logs": []}, "completed"),
    ({"status": "COMPLETED", "error": "boom"}, "failed"),
    ({"status": "COMPLETED", "error": [{"loc": ["body", "prompt"], "msg": "too long"}]}, "failed"),
    ({"status": "SOMETHING_NEW"}, "unknown"),
])  # fmt: skip
def test_fal_status_words(answer: dict[str, Any], expected: str) -> None:
    video = fal_adapter.to_video(answer, handle="fal-ai/veo3/requests/r", result={"video": {"url": "https://c/v.mp4"}})
    assert video.status == expected and video.progress is None
    if expected == "failed":
        assert video.error is not None and video.error.message in ("boom", "too long")
        assert "asset_url" not in video.extra  # an errored request's result is never downloaded


@pytest.mark.parametrize(("word", "expected"), [
    ("starting", "queued"), ("processing", "in_progress"), ("succeeded", "completed"), ("failed", "failed"),
    ("canceled", "cancelled"), ("aborted", "cancelled"), ("weird", "unknown"),
])  # fmt: skip
def test_replicate_status_words(word: str, expected: str) -> None:
    video = replicate_adapter.to_video({"id": "p", "status": word, "output": "https://replicate.delivery/o.mp4"},
                                       handle=None)
    assert video.status == expected


@pytest.mark.parametrize(("task", "expected", "progress"), [
    ({"status": "PENDING"}, "queued", None), ({"status": "THROTTLED"}, "queued", None),
    ({"status": "RUNNING", "progress": 0.5}, "in_progress", 50), ({"status": "RUNNING"}, "in_progress", None),
    ({"status": "SUCCEEDED", "output": ["https://o/v.mp4"]}, "completed", 100),
    ({"status": "FAILED", "failure": "no", "failureCode": "INTERNAL"}, "failed", None),
    ({"status": "CANCELLED"}, "cancelled", None), ({"status": "NEW_WORD"}, "unknown", None),
])  # fmt: skip
def test_runway_status_words(task: dict[str, Any], expected: str, progress: int | None) -> None:
    video = runway_adapter.to_video({"id": "t", **task}, handle=None)
    assert (video.status, video.progress) == (expected, progress)


@pytest.mark.parametrize("position", [-1, "3", True, 2.5, None])
def test_a_queue_position_that_is_not_a_count_is_ignored(position: object) -> None:
    video = fal_adapter.to_video({"status": "IN_QUEUE", "queue_position": position}, handle="a/b/requests/c")
    assert video.status == "queued" and "queue_position" not in video.extra


@pytest.mark.parametrize(("progress", "expected"), [(-0.5, 0), (1.7, 100), ("0.5", None), (True, None)])
def test_runway_progress_out_of_range_is_clamped_or_dropped(progress: object, expected: int | None) -> None:
    video = runway_adapter.to_video({"id": "t", "status": "RUNNING", "progress": progress}, handle=None)
    assert video.progress == expected


def test_request_shapes_follow_each_service(tmp_path: Path) -> None:
    params = {"prompt": "p", "size": "720x1280", "seconds": "5"}
    kling = {**params, "model": "fal-ai/kling-video/v2.1/master/text-to-video"}
    assert fal_adapter.build_body(kling, {"image_url": "https://i/x.png"}, seed=1, extra={}) == {
        "prompt": "p", "duration": "5", "aspect_ratio": "9:16", "seed": 1, "image_url": "https://i/x.png"}
    assert replicate_adapter.create_path("kwaivgi/kling-v2.1")[0] == "models/kwaivgi/kling-v2.1/predictions"
    body = replicate_adapter.build_body({**params, "model": "kwaivgi/kling-v2.1"}, "https://i/x.png", seed=None,
                                        extra={"negative_prompt": "rain"})
    assert body["input"]["start_image"] == "https://i/x.png" and body["input"]["negative_prompt"] == "rain"
    endpoint, task = runway_adapter.build_body({**params, "model": "gen4.5"}, {"image_url": "https://i/x.png"},
                                               seed=None, extra={})
    assert endpoint == "image_to_video" and task["ratio"] == "720:1280" and task["promptImage"] == "https://i/x.png"
    with pytest.raises(sora_nb.ValidationError, match="not a Replicate model") as info:
        replicate_adapter.create_path("veo 3")
    assert info.value.field == "model"


def test_each_new_profile_names_its_adapter_dialect_and_key() -> None:
    expected = {"fal": (FalClient, "FAL_KEY", "Key "), "replicate": (ReplicateClient, "REPLICATE_API_TOKEN", "Bearer "),
                "runway": (RunwayClient, "RUNWAYML_API_SECRET", "Bearer ")}
    for name, (cls, env, scheme) in expected.items():
        profile = PROFILES[name]
        assert profile.requires_key and profile.dialect == name and profile.key_env == (env,)
        caps = profile.capabilities
        assert caps.supports_delete and not caps.supports_list  # cancel exists; no list to search
        api = make_client(profile, base_url=profile.base_url, api_key="secret-k")
        assert type(api) is cls and "secret-k" not in repr(api)
        assert api._http.headers["authorization"] == scheme + "secret-k"
        if name == "runway":
            assert api._http.headers["x-runway-version"] == "2024-11-06"
        asyncio.run(api.aclose())


def test_capabilities_say_what_is_known_and_leave_the_rest_unknown() -> None:
    kling = PROFILES["fal"].capabilities.spec("fal-ai/kling-video/v2.1/master/text-to-video")
    assert kling is not None and kling.seconds == ("5", "10") and kling.price("1920x1080") == 0.28
    assert kling.price_source is not None and "2026-12-01" in kling.price_source
    for name in NEW:
        for model, spec in (PROFILES[name].capabilities.models or {}).items():
            assert (spec.usd_per_second is None) == (spec.price_source is None), (name, model)
            assert spec.image_input is True, (name, model)  # one image-to-video input for all of them
    veo = PROFILES["replicate"].capabilities.spec("google/veo-3-fast")
    assert veo is not None and veo.sizes is None and veo.seconds is None and veo.usd_per_second is None
    assert PROFILES["replicate"].capabilities.price_per_second("google/veo-3-fast", "1280x720") is None
    # fal and Replicate host far more models than are described: any other name is sent as given.
    assert PROFILES["fal"].capabilities.open_models and not PROFILES["runway"].capabilities.open_models


# ---------------------------------------------------------------------------- attacks


def test_fal_completed_with_an_error_is_a_failure_and_nothing_is_downloaded(connect: Any) -> None:
    """A hostile fal: the status says COMPLETED (with an error) and the result still names a video."""

    def completed_with_error(request: httpx.Request, data: Any) -> Any:
        if request.url.path.endswith("/status") and data.get("status") == "COMPLETED":
            return {**data, "error": "GPU worker crashed", "error_type": "runner_server_error"}
        return data

    client, transport = connect("fal", rewrite=completed_with_error)
    job = client.generate("a lighthouse at dusk")
    with pytest.raises(sora_nb.JobFailedError, match="GPU worker crashed"):
        job.wait(timeout=30)
    assert job.status == "failed" and job.error is not None and job.error.code == "runner_server_error"
    assert job.video_path is None
    assert not [seen for seen in transport.seen if "/files/" in seen[2]], "an errored request's video was fetched"
    assert len(transport.audit()) == 1


def test_fal_polls_only_its_own_origin_whatever_host_the_submit_answer_names(connect: Any) -> None:
    def elsewhere(request: httpx.Request, data: Any) -> Any:
        if request.method == "POST":  # the key would follow a poll there
            return {**data, "response_url": f"https://elsewhere.example/fal-ai/veo3/requests/{data['request_id']}"}
        return data

    client, transport = connect("fal", rewrite=elsewhere)
    client.generate("a lighthouse at dusk").wait(timeout=30)
    assert "elsewhere.example" not in {host for _, host, _, _ in transport.seen}
    assert len(transport.audit()) == 1


@pytest.mark.parametrize("path", ["fal-ai/veo3/requests/../../{id}", "fal-ai/veo3/requests/not-this-request"])
def test_fal_never_polls_a_request_path_it_cannot_trust(path: str, connect: Any) -> None:
    def hostile(request: httpx.Request, data: Any) -> Any:
        if request.method == "POST":
            return {**data, "response_url": f"http://fal.simulator.local/{path.format(id=data['request_id'])}"}
        return data

    client, transport = connect("fal", rewrite=hostile)
    job = client.generate("a lighthouse at dusk")
    with pytest.raises(sora_nb.JobFailedError):
        job.wait(timeout=30)
    assert job.status == "ambiguous"  # made, but its id cannot be trusted: looked for by hand, never re-sent
    assert [method for method, *_ in transport.seen] == ["POST"] and len(transport.audit()) == 1


def test_fal_failure_told_only_by_the_result_is_a_failure(connect: Any) -> None:
    """A status that says COMPLETED without its error: the result's 422 ``{"detail"}`` still fails the job."""

    def no_error_in_status(request: httpx.Request, data: Any) -> Any:
        if request.url.path.endswith("/status"):
            return {k: v for k, v in data.items() if k not in ("error", "error_type")}
        return data

    client, transport = connect("fal", rewrite=no_error_in_status)
    job = client.generate("a storm [fail]")
    with pytest.raises(sora_nb.JobFailedError, match="moderation"):
        job.wait(timeout=30)
    assert job.error is not None and job.error.code == "moderation_blocked" and job.video_path is None
    assert len(transport.audit()) == 1


def test_fal_failed_request_is_completed_with_an_error_in_the_dialect_too(connect: Any) -> None:
    client, transport = connect("fal")
    job = client.generate("a storm [fail]")
    with pytest.raises(sora_nb.JobFailedError, match="moderation"):
        job.wait(timeout=30)
    statuses = [data["status"] for method, _, path, data in transport.seen if path.endswith("/status")]
    assert statuses[-1] == "COMPLETED" and job.error is not None and job.error.code == "moderation_blocked"


def test_fal_shows_the_queue_position_while_queued(connect: Any) -> None:
    client, transport = connect("fal", queue_s=4000.0)
    run = client.sweep(prompt=["a", "b", "c"], size="1280x720", seconds="8").start(max_concurrency=3)
    wait_for(lambda: all(job.status == "queued" and job.queue_position is not None for job in run.jobs))
    assert sorted(job.queue_position for job in run.jobs) == [0, 1, 2]  # type: ignore[type-var]
    from sora_nb._display import job_status_text

    last = max(run.jobs, key=lambda job: job.queue_position or 0)
    assert "2 ahead in the queue" in job_status_text(last)
    run.cancel()
    assert len(transport.audit()) == 3


def test_replicate_resume_finds_the_output_expired_and_says_so(tmp_path: Path) -> None:
    """The output is deleted an hour after the prediction: a resume after that says so, and creates nothing."""
    clock = FakeClock()
    config = sim("replicate", state_dir=str(tmp_path / "sim"))
    first = HostileTransport(config, clock=clock)
    client = sora_nb.connect("replicate", simulator=config, transport=first, run_root=tmp_path / "runs")
    job = client.generate("a paper boat")
    wait_for(lambda: job.remote_id is not None)
    run_dir = job.run.run_dir
    client.close()  # the kernel restarts before the video is fetched
    clock.advance(2 * 3600)  # done long ago, and its output deleted after an hour

    second = HostileTransport(config, clock=clock)
    later = sora_nb.connect("replicate", simulator=config, transport=second, run_root=tmp_path / "runs")
    try:
        run = sora_nb.resume(run_dir, client=later)
        run.wait(timeout=30)
        (resumed,) = run.jobs
        assert resumed.status == "expired" and resumed.error is not None
        assert resumed.error.code == "output_expired" and "an hour" in resumed.error.message
        assert "job.retry()" in resumed.error.message
    finally:
        later.close()
    assert len(second.audit()) == 1  # the one create, by the first process


def test_a_resumed_fal_job_is_polled_by_its_id_alone(tmp_path: Path) -> None:
    """The id kept is ``{app}/requests/{id}``: a new process polls it without knowing which model made it."""
    clock = FakeClock()
    config = sim("fal", state_dir=str(tmp_path / "sim"))
    first = HostileTransport(config, clock=clock)
    client = sora_nb.connect("fal", simulator=config, transport=first, run_root=tmp_path / "runs")
    job = client.generate("a paper boat", model="fal-ai/kling-video/v2.1/master/text-to-video", size="1920x1080",
                          seconds="5")
    wait_for(lambda: job.remote_id is not None)
    assert job.remote_id is not None and job.remote_id.startswith("fal-ai/kling-video/requests/")
    run_dir = job.run.run_dir
    client.close()
    clock.advance(600)

    second = HostileTransport(config, clock=clock)
    later = sora_nb.connect("fal", simulator=config, transport=second, run_root=tmp_path / "runs")
    try:
        run = sora_nb.resume(run_dir, client=later)
        run.wait(timeout=30)
        (resumed,) = run.jobs
        assert resumed.status == "completed" and resumed.video_path is not None and resumed.video_path.exists()
    finally:
        later.close()
    assert [path for method, _, path, _ in second.seen if method == "POST"] == []
    assert len(second.audit()) == 1


def test_replicate_link_gone_before_the_download_says_it_expired(tmp_path: Path) -> None:
    clock = FakeClock()

    async def main() -> None:
        transport = HostileTransport(sim("replicate"), clock=clock)
        async with make_client(PROFILES["replicate"], base_url=simulator_base_url(PROFILES["replicate"]),
                               api_key="k", transport=transport) as api:
            video = await api.create(prompt="a fox", seconds="8")
            clock.advance(600)
            polled, _ = await api.poll(video.id)
            assert polled.status == "completed" and "/delivery/" in polled.extra["asset_url"]
            clock.advance(3600)  # the link it gave is deleted now
            with pytest.raises(sora_nb.DownloadError, match="an hour after it is made") as info:
                await api.download(video.id, tmp_path / "v.mp4")
            assert "job.retry()" in str(info.value)
            assert not (tmp_path / "v.mp4").exists()

    asyncio.run(main())


def test_a_lapsed_runway_link_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    clock = FakeClock()

    async def main() -> None:
        transport = HostileTransport(sim("runway", asset_ttl=60.0), clock=clock)
        async with make_client(PROFILES["runway"], base_url=simulator_base_url(PROFILES["runway"]),
                               api_key="k", transport=transport) as api:
            video = await api.create(prompt="a fox", seconds="8", size="1280x720")
            clock.advance(600)
            polled, _ = await api.poll(video.id)
            assert polled.status == "completed"
            clock.advance(120)  # the link it gave has lapsed
            path = await api.download(video.id, tmp_path / "v.mp4")
            assert path.read_bytes()[4:8] == b"ftyp"
        fetched = [(host, p) for method, host, p, _ in transport.seen if "runway-output" in p]
        assert len(fetched) == 2  # the lapsed link (403), then the fresh one
        assert len(transport.audit()) == 1

    asyncio.run(main())


def test_runway_throttled_for_a_while_stays_queued_and_completes(connect: Any) -> None:
    client, transport = connect("runway", queue_s=400.0)
    seen: list[str] = []
    run = client.sweep(prompt=["a", "b", "c", "d"], size="1280x720", seconds="8").start(max_concurrency=4)
    for job in run.jobs:
        job.observe(lambda j: seen.append(j.status))
    run.wait(timeout=60)
    words = [data.get("status") for method, _, path, data in transport.seen if "/tasks/" in path and data]
    assert words.count("THROTTLED") >= 2, words  # for a while, not once
    assert set(seen) <= {"pending_submit", "queued", "in_progress", "completed"}, seen
    assert [job.status for job in run.jobs] == ["completed"] * 4
    assert len(transport.audit()) == 4


@pytest.mark.parametrize("profile", NEW)
def test_a_502_after_the_create_was_accepted_is_never_sent_again(profile: str, connect: Any) -> None:
    client, transport = connect(profile, fail_creates=1)
    job = client.generate("a storm over the sea")
    with pytest.raises(sora_nb.JobFailedError):
        job.wait(timeout=30)
    assert job.status == "ambiguous" and job.error is not None and "did not send it again" in job.error.message
    assert PROFILES[profile].dashboard_url in job.error.message  # type: ignore[operator]
    assert len(transport.audit()) == 1  # the server made it once; nothing paid twice


@pytest.mark.parametrize("profile", NEW)
def test_cancel_reaches_the_service(profile: str, connect: Any) -> None:
    client, transport = connect(profile, queue_s=4000.0)
    job = client.generate("a very long take")
    wait_for(lambda: job.remote_id is not None)
    job.cancel()
    with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
        job.wait(timeout=10)
    method = {"fal": "PUT", "replicate": "POST", "runway": "DELETE"}[profile]
    wait_for(lambda: any(m == method and ("cancel" in p or m == "DELETE") for m, _, p, _ in transport.seen))
    assert len(transport.audit()) == 1


@pytest.mark.parametrize("profile", NEW)
def test_one_image_input_travels_in_each_services_shape(profile: str, connect: Any, tmp_path: Path) -> None:
    ref = write_image(tmp_path / "ref.png", (64, 36))
    client, transport = connect(profile)
    client.generate("the scene, animated", input_reference=ref).wait(timeout=30)
    client.generate("the scene, from a link", input_reference="https://images.example/first.png").wait(timeout=30)
    client.call(lambda api: api.create(prompt="the scene, from bytes", input_reference=ref.read_bytes()))
    creates = [path for method, _, path, _ in transport.seen if method == "POST" and "files" not in path]
    expected = {"fal": "/fal-ai/veo3/fast/image-to-video", "replicate": "/v1/models/google/veo-3-fast/predictions",
                "runway": "/v1/image_to_video"}[profile]
    assert creates == [expected] * 3
    assert len(transport.audit()) == 3


def test_a_large_image_is_uploaded_to_replicate_and_too_large_for_runway(connect: Any, tmp_path: Path) -> None:
    import os

    from PIL import Image

    big = tmp_path / "big.png"
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(big)  # noise: ~5.9 MB as PNG
    replicate, transport = connect("replicate")
    replicate.generate("the scene, animated", input_reference=big).wait(timeout=30)
    posts = [path for method, _, path, _ in transport.seen if method == "POST"]
    assert posts == ["/v1/files", "/v1/models/google/veo-3-fast/predictions"]
    runway, runway_transport = connect("runway")
    job = runway.generate("the scene, animated", input_reference=big)
    with pytest.raises(sora_nb.JobFailedError, match="Runway takes at most 5 MB"):
        job.wait(timeout=30)
    assert job.error is not None and job.error.code == "ValidationError" and "Fix:" in job.error.message
    assert runway_transport.audit() == [] and not runway_transport.seen  # checked before anything was sent
