"""Provider adapters against the simulator's dialects of the services, and through recorded cassettes.

Honest about the source: nothing here talks to OpenRouter, xAI, Google, Together, fal, Replicate or
Runway. The dialects follow each service's published API reference (see ``sora_nb/simulator/dialects/``);
the adapters are tested against them in process (the normal engine: ``client.sweep(...).start()`` ->
DataFrame) and against
cassettes recorded from the dialects served on loopback (``cassettes/providers/``, replayed with record
mode ``none``; ``SORA_NB_RECORD=1`` re-records them, starting the servers itself).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from cassette_support import CASSETTES as ALL_CASSETTES
from cassette_support import RECORDING, annotating_persister, vcr_options
from PIL import Image
from support import FAST, SimulatedClients, write_image

import sora_nb
from sora_nb import PROFILES, RetryPolicy
from sora_nb._capabilities import Capabilities
from sora_nb._display import job_status_text
from sora_nb._errors import AmbiguousCreateError, UnsupportedOperationError
from sora_nb._profiles import simulator_base_url
from sora_nb.providers import GeminiClient, OpenRouterClient, TogetherClient, XAIClient, make_client
from sora_nb.providers import gemini as gemini_adapter
from sora_nb.providers import openrouter as openrouter_adapter
from sora_nb.providers import together as together_adapter
from sora_nb.providers import xai as xai_adapter
from sora_nb.providers._shapes import aspect_and_resolution, size_for
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

HOSTED = ("openrouter", "xai", "gemini", "together", "fal", "replicate", "runway")
SWEEP = {"prompt": ["a corgi surfing at sunset", "a cat skiing"], "size": "1280x720", "seconds": "8"}
"""The one sweep every profile runs unchanged (each profile supplies its default model)."""


class RecordingTransport(SimulatorTransport):
    """The in-process simulator, noting each request's host, path and whether credentials rode along."""

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self.requests: list[tuple[str, str, str, bool]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        credentials = any(h in request.headers for h in ("authorization", "x-goog-api-key", "api-key"))
        self.requests.append((request.method, request.url.host, request.url.path, credentials))
        return await super().handle_async_request(request)


def sim(dialect: str = "openai", **options: Any) -> SimulatorConfig:
    return SimulatorConfig(**{"seed": 5, "time_scale": FAST, "max_side": 48, "fps": 4, "dialect": dialect,
                              **options})


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Any]:
    """``connect(profile, **config)``: a client on the profile's in-process dialect, closed after the test."""
    clients = SimulatedClients(tmp_path)

    def make(profile: str, **options: Any) -> tuple[sora_nb.Client, RecordingTransport]:
        dialect = PROFILES[profile].dialect
        strict = not PROFILES[profile].capabilities.open_models
        transport = RecordingTransport(sim(dialect, strict_models=strict, **options))
        return clients.connect(profile, transport), transport

    yield make
    clients.close()


# ---------------------------------------------------------------------------- pure translation tables


@pytest.mark.parametrize(("word", "expected"), [
    ("pending", "queued"), ("in_progress", "in_progress"), ("completed", "completed"), ("failed", "failed"),
    ("cancelled", "cancelled"), ("expired", "expired"), ("something-new", "unknown"),
])  # fmt: skip
def test_openrouter_status_words(word: str, expected: str) -> None:
    video = openrouter_adapter.to_video({"id": "j", "status": word}, handle="j", base_url="https://o.example/api/v1/")
    assert (video.status, video.status_raw, video.progress) == (expected, word, None)


@pytest.mark.parametrize(("word", "progress", "expected"), [
    ("pending", None, "queued"), ("pending", 0, "queued"), ("pending", 35, "in_progress"),
    ("done", 100, "completed"), ("failed", None, "failed"), ("expired", None, "expired"),
    ("queued", None, "queued"), ("processing", None, "in_progress"), ("weird", None, "unknown"),
])  # fmt: skip
def test_xai_status_words(word: str, progress: int | None, expected: str) -> None:
    assert xai_adapter.to_status(word, progress) == expected


def test_xai_withheld_video_is_a_failure_with_a_reason() -> None:
    video = xai_adapter.to_video({"status": "done", "video": {"duration": 0, "respect_moderation": False}},
                                 handle="r")
    assert video.status == "failed" and video.error is not None and video.error.code == "moderation_blocked"
    assert "asset_url" not in video.extra


@pytest.mark.parametrize(("operation", "expected", "code"), [
    ({"name": "models/m/operations/1"}, "in_progress", None),
    ({"name": "models/m/operations/1", "done": False}, "in_progress", None),
    ({"name": "models/m/operations/1", "done": True, "error": {"code": 13, "message": "boom"}}, "failed", "13"),
    ({"name": "models/m/operations/1", "done": True, "response": {"generateVideoResponse": {
        "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["unsafe"]}}}, "failed", "content_filtered"),
    ({"name": "models/m/operations/1", "done": True, "response": {"generateVideoResponse": {
        "generatedSamples": [{"video": {"uri": "https://g/v1beta/files/f:download?alt=media"}}]}}}, "completed", None),
])  # fmt: skip
def test_gemini_operation_states(operation: dict[str, Any], expected: str, code: str | None) -> None:
    video = gemini_adapter.to_video(operation, handle=None)
    assert video.status == expected and video.progress is None
    assert (video.error.code if video.error else None) == code


@pytest.mark.parametrize(("word", "expected"), [
    ("in_progress", "in_progress"), ("completed", "completed"), ("failed", "failed"), ("queued", "queued"),
    ("cancelled", "cancelled"), ("mystery", "unknown"),
])  # fmt: skip
def test_together_status_words(word: str, expected: str) -> None:
    assert together_adapter.to_video({"id": "x", "status": word}, handle=None).status == expected


def test_costs_are_normalised_to_usd() -> None:
    assert openrouter_adapter.to_video({"id": "j", "status": "completed", "usage": {"cost": 0.5}}, handle=None,
                                       base_url="https://o/").extra["cost_usd"] == 0.5
    assert xai_adapter.to_video({"status": "done", "usage": {"cost_in_usd_ticks": 7_000_000_000}},
                                handle="r").extra["cost_usd"] == 0.7
    assert together_adapter.to_video({"id": "x", "status": "completed", "outputs": {"cost": 0.28}},
                                     handle=None).extra["cost_usd"] == 0.28
    assert "cost_usd" not in gemini_adapter.to_video({"name": "operations/1", "done": True}, handle=None).extra


def test_together_created_at_in_either_shape() -> None:
    iso = together_adapter.to_video({"id": "x", "created_at": "2025-10-20T06:57:18.154804Z"}, handle=None)
    assert iso.created_at == 1760943438
    assert together_adapter.to_video({"id": "x", "created_at": 1760943438}, handle=None).created_at == 1760943438


@pytest.mark.parametrize(("size", "aspect", "resolution"), [
    ("1280x720", "16:9", "720p"), ("720x1280", "9:16", "720p"), ("1920x1080", "16:9", "1080p"),
    ("848x480", "16:9", "480p"), ("720x720", "1:1", "720p"), ("3840x2160", "16:9", "4k"),
])  # fmt: skip
def test_sizes_as_aspect_and_resolution(size: str, aspect: str, resolution: str) -> None:
    assert aspect_and_resolution(size) == (aspect, resolution)
    back = size_for(aspect, resolution)
    assert back is not None and aspect_and_resolution(back) == (aspect, resolution)


def test_a_size_no_service_names_is_refused_before_sending() -> None:
    with pytest.raises(sora_nb.ValidationError, match="no aspect ratio and resolution"):
        aspect_and_resolution("1000x333")


def test_request_bodies_follow_each_reference() -> None:
    params = {"prompt": "p", "model": "m", "size": "720x1280", "seconds": "4"}
    assert openrouter_adapter.build_body(params, None, seed=None, extra={}) == {
        "model": "m", "prompt": "p", "duration": 4, "resolution": "720p", "aspect_ratio": "9:16"}
    assert xai_adapter.build_body(params, None, extra={})["duration"] == 4
    assert gemini_adapter.build_body(params, None, extra={})["parameters"] == {
        "aspectRatio": "9:16", "resolution": "720p", "durationSeconds": 4}
    assert together_adapter.build_body(params, seed=None, extra={}) == {
        "model": "m", "prompt": "p", "width": 720, "height": 1280, "seconds": "4"}


def test_openrouter_follows_a_relative_polling_url_only_on_its_own_origin() -> None:
    api = OpenRouterClient(profile=PROFILES["openrouter"], base_url="https://openrouter.ai/api/v1", api_key="k")
    api.parse_job({"id": "a", "status": "pending", "polling_url": "/api/v1/videos/a"}, handle=None)
    api.parse_job({"id": "b", "status": "pending", "polling_url": "https://elsewhere.example/videos/b"}, handle=None)
    assert api.poll_path("a") == "https://openrouter.ai/api/v1/videos/a"
    assert api.poll_path("b") == "videos/b"  # another origin would get the key: the documented path instead
    asyncio.run(api.aclose())


def test_each_profile_names_its_adapter_and_dialect() -> None:
    expected = {"openrouter": OpenRouterClient, "xai": XAIClient, "gemini": GeminiClient, "together": TogetherClient}
    for name, cls in expected.items():
        profile = PROFILES[name]
        assert profile.requires_key and profile.dialect == name and profile.key_env[0].endswith("_API_KEY")
        api = make_client(profile, base_url=profile.base_url, api_key="k")
        assert type(api) is cls and "key=set" in repr(api) and "'k'" not in repr(api)
        asyncio.run(api.aclose())
    assert isinstance(make_client(PROFILES["litellm"], base_url="http://localhost:4000/v1"), sora_nb.ContractClient)


# ---------------------------------------------------------------------------- keys


def test_a_hosted_profile_without_a_key_does_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("SORA_NB_BASE_URL", raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "")  # nobody types one
    with pytest.raises(sora_nb.ConfigurationError, match="OPENROUTER_API_KEY") as info:
        sora_nb.connect("openrouter")
    assert "simulator=True" in str(info.value)


def test_simulator_mode_never_sends_a_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, connect: Any) -> None:
    monkeypatch.setenv("XAI_API_KEY", "xai-real-key-must-stay-home")
    client, _transport = connect("xai")
    assert client.base_url == simulator_base_url(PROFILES["xai"]) == "http://xai.simulator.local/v1"
    client.generate("a fox").wait(timeout=30)
    assert "xai-real-key-must-stay-home" not in repr(client.api._http.headers)


# ---------------------------------------------------------------------------- the engine on each dialect


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_same_sweep_runs_unchanged_on_every_profile(profile: str, connect: Any) -> None:
    client, transport = connect(profile)
    sweep = client.sweep(**SWEEP)
    assert not sweep.plan.invalid and len(sweep) == 2
    run = sweep.start(max_concurrency=2).wait(timeout=60)
    df = run.to_dataframe()
    assert list(df["status"]) == ["completed", "completed"], df[["status", "error_message"]]
    assert set(df["model"]) == {PROFILES[profile].capabilities.default_model}
    for video, thumb in zip(df["video_path"], df["thumbnail_path"], strict=True):
        with av.open(video) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.width > stream.height
        with Image.open(thumb) as poster:
            assert poster.format == "WEBP"
    assert len(transport.audit()) == 2  # one create per job, nothing paid twice


@pytest.mark.parametrize("profile", HOSTED)
def test_credentials_go_only_to_the_services_origin(profile: str, connect: Any) -> None:
    client, transport = connect(profile)
    client.generate("a lighthouse at dusk").wait(timeout=30)
    api_host = httpx.URL(client.base_url).host
    for method, host, path, credentials in transport.requests:
        assert credentials == (host == api_host), (method, host, path, credentials)
    fetched = [path for _, host, path, _ in transport.requests if host != api_host]
    dialect = transport.app.dialect
    assert all(not entry["credentials"] for entry in dialect.asset_requests if entry["host"] != api_host)
    if profile == "openrouter":  # unsigned_urls: the API's own content proxy, which needs the key
        assert fetched == [] and any(p.endswith("/content") for _, _, p, c in transport.requests if c)
    else:  # a CDN link (xAI), a redirect to storage (Gemini), a short link (Together): no key
        assert fetched, transport.requests


@pytest.mark.parametrize("profile", ["simulator", *HOSTED])
def test_every_simulated_service_401s_a_request_without_its_key(profile: str) -> None:
    """Each imitation answers as its service: no key (in that service's own header, Gemini's
    ``x-goog-api-key``, Bearer elsewhere) is a 401; any key in the right header is accepted."""
    chosen = PROFILES[profile]
    dialect = chosen.dialect

    async def main() -> None:
        transport = SimulatorTransport(sim(dialect))
        base = simulator_base_url(chosen) if profile != "simulator" else "http://simulator.local/v1"
        keyed = make_client(chosen, base_url=base, api_key="any-key-at-all", transport=transport)
        anonymous = make_client(chosen, base_url=base, transport=transport,
                                retry=RetryPolicy(max_retries=0, jitter=0.0))
        seconds = {"xai": "1", "together": "1"}.get(profile, "4")
        size = "848x480" if profile == "xai" else "1280x720"
        async with keyed, anonymous:
            with pytest.raises(sora_nb.AuthenticationError, match="401"):
                await anonymous.create(prompt="a fox", seconds=seconds, size=size)
            video = await keyed.create(prompt="a fox", seconds=seconds, size=size)
            assert video.id
        assert len(transport.audit()) == 1  # only the keyed create was accepted

    asyncio.run(main())


def test_openrouter_content_needs_the_key(tmp_path: Path) -> None:
    async def main() -> None:
        transport = SimulatorTransport(sim("openrouter"))
        base = "http://openrouter.simulator.local/api/v1"
        keyed = make_client(PROFILES["openrouter"], base_url=base, api_key="k", transport=transport)
        anonymous = make_client(PROFILES["openrouter"], base_url=base, transport=transport)
        async with keyed, anonymous:
            video = await keyed.create(prompt="a fox", seconds="4")
            while not (await keyed.poll(video.id))[0].done:
                await asyncio.sleep(0.02)
            url = (await keyed.poll(video.id))[0].extra["asset_url"]
            assert url.endswith(f"/api/v1/videos/{video.id}/content?index=0")
            with pytest.raises(sora_nb.AuthenticationError, match="401"):
                await anonymous.download_url(url, tmp_path / "no.mp4")
            assert (await keyed.download(video.id, tmp_path / "v.mp4")).stat().st_size > 0

    asyncio.run(main())


def test_a_failed_asset_download_names_the_host_not_the_path(tmp_path: Path) -> None:
    """xAI's CDN paths (``xai-video-<uuid>``) look like keys: an error naming them could not be stored."""
    from sora_nb._redact import looks_like_secret

    async def main() -> None:
        transport = SimulatorTransport(sim("xai", asset_ttl=0.3))
        async with make_client(PROFILES["xai"], base_url="http://xai.simulator.local/v1", api_key="k",
                               transport=transport, retry=RetryPolicy(max_retries=0)) as api:
            video = await api.create(prompt="a fox", size="848x480", seconds="1")
            while not (await api.poll(video.id))[0].done:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.4)  # the temporary link has expired
            with pytest.raises(sora_nb.NotFoundError) as info:
                await api.download(video.id, tmp_path / "v.mp4")
        message = str(info.value)
        assert "cdn.xai.simulator.local" in message and "xai-video" not in message
        assert not looks_like_secret(message)

    asyncio.run(main())


def test_no_progress_shows_elapsed_time(connect: Any) -> None:
    client, _ = connect("openrouter", base_run_s=100.0)
    seen: list[tuple[int | None, str]] = []
    job = client.generate("a slow sunrise")
    job.observe(lambda j: seen.append((j.progress, job_status_text(j))))
    job.wait(timeout=30)
    assert seen and all(progress is None for progress, _ in seen)
    running = [text for _, text in seen if "elapsed" in text]
    assert running and not any("%" in text for text in running)
    assert client.profile.capabilities.reports_progress is False


def test_progress_is_reported_where_the_service_has_it(connect: Any) -> None:
    client, _ = connect("xai", base_run_s=100.0)
    seen: list[int | None] = []
    job = client.generate("a slow sunset")
    job.observe(lambda j: seen.append(j.progress))
    job.wait(timeout=30)
    assert job.progress == 100 and any(p is not None and 0 < p < 100 for p in seen)


def test_cancel_without_delete_only_stops_polling(connect: Any) -> None:
    client, transport = connect("together", base_run_s=2000.0)
    job = client.generate("a very long take")
    deadline = time.monotonic() + 10
    while not job.remote_id and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    with pytest.raises(sora_nb.JobFailedError, match="cancelled"):
        job.wait(timeout=10)
    time.sleep(0.05)
    assert not [r for r in transport.requests if r[0] == "DELETE"]
    with pytest.raises(UnsupportedOperationError, match="no delete"):
        client.call(lambda api: api.delete(job.remote_id))


def test_thumbnails_are_made_locally_and_never_asked_for(connect: Any) -> None:
    client, transport = connect("gemini")
    job = client.generate("a paper boat").wait(timeout=30)
    assert job.thumbnail_path is not None and job.thumbnail_path.exists()
    assert not [r for r in transport.requests if "thumbnail" in r[2]]
    with pytest.raises(UnsupportedOperationError, match="thumbnail"):
        client.call(lambda api: api.download(job.remote_id, job.run.run_dir / "t.webp", variant="thumbnail"))


def test_a_missing_remix_fails_the_job_visibly(connect: Any) -> None:
    client, transport = connect("openrouter")
    source = client.generate("a paper boat").wait(timeout=30)
    remix = source.remix("a paper boat at night")
    with pytest.raises(sora_nb.JobFailedError, match="has no remix"):
        remix.wait(timeout=30)
    assert remix.error is not None and remix.error.code == "UnsupportedOperationError"
    assert len(transport.audit()) == 1


def test_xai_remix_and_extend_go_through_edits_and_extensions(connect: Any) -> None:
    client, transport = connect("xai")
    source = client.generate("a paper boat", size="848x480", seconds="4").wait(timeout=30)
    remix = source.remix("a paper boat at night").wait(timeout=30)
    extended = source.extend("the boat sails away", seconds="3").wait(timeout=30)
    kinds = [(entry["kind"], entry["seconds"]) for entry in transport.audit()]
    assert kinds == [("create", "4"), ("remix", "4"), ("extend", "7")]
    assert remix.video_path is not None and extended.video_path is not None
    paths = [path for method, _, path, _ in transport.requests if method == "POST"]
    assert paths == ["/v1/videos/generations", "/v1/videos/edits", "/v1/videos/extensions"]


@pytest.mark.parametrize("profile", HOSTED)
def test_an_ambiguous_create_is_not_sent_again_without_a_list(profile: str, connect: Any) -> None:
    client, transport = connect(profile, drop_after_create_rate=1.0)
    job = client.generate("a storm over the sea")
    with pytest.raises(sora_nb.JobFailedError) as info:
        job.wait(timeout=30)
    assert job.status == "ambiguous" and job.error is not None and job.error.code == "ambiguous_create"
    assert "did not send it again" in job.error.message and "dashboard" in job.error.message
    assert PROFILES[profile].dashboard_url in job.error.message
    assert len(transport.audit()) == 1, "created once, never re-sent"
    assert info.value.job is job
    report = job.run.audit()  # what it cannot check, it says, rather than "all clear"
    assert not report.ok and not report.listed and report.ambiguous == [job.id]
    assert report.cannot_check is not None and "no way to list jobs" in report.cannot_check


def test_reconcile_refuses_to_guess_where_jobs_cannot_be_listed(connect: Any) -> None:
    client, _ = connect("gemini")
    with pytest.raises(AmbiguousCreateError, match="no way to list jobs"):
        client.call(lambda api: api.reconcile({"prompt": "a fox"}, since=0.0))
    with pytest.raises(UnsupportedOperationError):
        client.call(lambda api: api.list())


def test_the_failed_jobs_error_comes_through_in_each_dialect(connect: Any) -> None:
    for profile in HOSTED:
        client, _ = connect(profile)
        job = client.generate("a storm [fail]")
        with pytest.raises(sora_nb.JobFailedError):
            job.wait(timeout=30)
        assert job.status == "failed" and job.error is not None and job.error.message, profile


def test_service_error_envelopes_become_api_errors(connect: Any) -> None:
    def unchecked(api: Any) -> Any:
        """The adapter with its profile's capabilities set aside, so that what the client would refuse
        before sending reaches the dialect, whose refusal is under test."""
        api.profile = replace(api.profile, capabilities=Capabilities(None, api.profile.capabilities.default_model))
        return api

    xai, _ = connect("xai")
    with pytest.raises(sora_nb.ValidationError, match="grok-x"):  # the profile knows xAI's models
        xai.call(lambda api: api.create(prompt="a fox", model="grok-x", size="848x480", seconds="4"))
    with pytest.raises(sora_nb.NotFoundError, match="grok-x does not exist"):
        xai.call(lambda api: unchecked(api).create(prompt="a fox", model="grok-x", size="848x480", seconds="4"))
    openrouter, _ = connect("openrouter")
    with pytest.raises(sora_nb.BadRequestError, match=r"does not support duration=8"):
        openrouter.call(lambda api: unchecked(api).create(prompt="a fox", model="alibaba/wan-2.6", size="1280x720",
                                                          seconds="8"))
    gemini, _ = connect("gemini")
    with pytest.raises(sora_nb.ValidationError, match=r"at 1920x1080\. Allowed: '8'"):
        gemini.call(lambda api: api.create(prompt="a fox", size="1920x1080", seconds="4"))
    with pytest.raises(sora_nb.BadRequestError, match="1080p videos must be 8 seconds"):
        gemini.call(lambda api: unchecked(api).create(prompt="a fox", size="1920x1080", seconds="4"))
    together, _ = connect("together")
    with pytest.raises(sora_nb.NotFoundError, match="Unable to access model"):
        together.call(lambda api: unchecked(api).create(prompt="a fox", model="acme/unknown", seconds="4"))


def test_sweeps_check_the_profiles_capabilities_before_sending(connect: Any) -> None:
    client, transport = connect("gemini")
    sweep = client.sweep(prompt="a fox", seconds=["5", "8"], size=["1280x720", "848x480"])
    assert len(sweep) == 1 and len(sweep.plan.invalid) == 3
    assert {combo.field for combo in sweep.plan.invalid} == {"seconds", "size"}
    assert sweep.estimate().cost_usd == pytest.approx(8 * 0.15)
    with pytest.raises(sora_nb.ValidationError, match="Allowed: '4', '6', '8'"):
        client.generate("a fox", seconds="5")
    assert transport.audit() == []


def test_reference_images_travel_in_each_services_shape(connect: Any, tmp_path: Path) -> None:
    ref = write_image(tmp_path / "ref.png", (64, 36))  # services scale it: no size check
    for profile in ("openrouter", "xai", "gemini"):
        client, _transport = connect(profile)
        client.generate("the scene, animated", input_reference=ref).wait(timeout=30)
    together, _ = connect("together")
    with pytest.raises(sora_nb.ValidationError, match="media fields"):
        together.call(lambda api: api.create(prompt="p", input_reference=ref))


def test_cli_serves_a_dialect() -> None:
    import argparse

    from sora_nb.simulator import add_arguments
    from sora_nb.simulator._serve import config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--dialect", "gemini"])).dialect == "gemini"
    assert config_from_args(parser.parse_args([])).dialect == "openai"
    with pytest.raises(SystemExit):
        parser.parse_args(["--dialect", "sora-app"])


# ---------------------------------------------------------------------------- cassettes (dialects on loopback)

CASSETTES = ALL_CASSETTES / "providers"
PORTS = {"openrouter": 8771, "xai": 8772, "gemini": 8773, "together": 8774, "fal": 8775, "replicate": 8776,
         "runway": 8777}
API_PATHS = {"openrouter": "/api/v1", "xai": "/v1", "gemini": "/v1beta", "together": "/v2", "fal": "",
             "replicate": "/v1", "runway": "/v1"}
KEY = "sk-record-provider-" + "P" * 24  # the key used while recording; it must never reach a cassette
HEADER = (
    "# Recorded from the sora_nb simulator's {dialect} dialect (`sora-nb simulator --dialect {dialect} --port\n"
    "# {port} --seed 31 --time-scale 0.002 --max-side 32 --fps 2`) over HTTP on loopback, with sora_nb's\n"
    "# {dialect} adapter. Not recorded from the service itself. Secrets scrubbed before writing.\n"
    "# Re-record: SORA_NB_RECORD=1 python -m pytest tests/test_providers.py -k cassette\n"
)


def _scrub(text: str) -> str:
    # The recording key and bearer tokens only: sora_nb's general redaction also blanks xAI's CDN paths
    # (``xai-vidgen-bucket/xai-video-...`` looks like an ``xai-`` key), which would break the replay.
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}", r"\1REDACTED", text.replace(KEY, "REDACTED"))


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return vcr_options(_scrub)


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


def _header(path: Path) -> str:
    dialect = path.stem.split("_")[0]
    return HEADER.format(dialect=dialect, port=PORTS.get(dialect, 0))


@pytest.fixture(scope="module")
def vcr(vcr: Any) -> Any:
    vcr.register_persister(annotating_persister(_header))
    return vcr


@pytest.fixture
def vcr_cassette_name(request: pytest.FixtureRequest) -> str:
    return f"{request.node.callspec.params['served']}_lifecycle"


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    """The dialect's base URL: served on its fixed loopback port while recording; nothing while replaying."""
    dialect = request.param
    base = f"http://127.0.0.1:{PORTS[dialect]}{API_PATHS[dialect]}"
    if not RECORDING:
        yield base
        return
    from sora_nb.simulator import start_server

    config = SimulatorConfig(seed=31, time_scale=0.002, max_side=32, fps=2, dialect=dialect)
    with start_server(config, port=PORTS[dialect]):
        yield base


async def _pause(_: float) -> None:
    if RECORDING:
        await asyncio.sleep(0.05)


SECONDS = {"openrouter": "4", "xai": "1", "gemini": "4", "together": "1", "fal": "4", "replicate": "4", "runway": "4"}


@pytest.mark.vcr
@pytest.mark.parametrize("served", list(PORTS), indirect=True, ids=lambda d: f"cassette_{d}")
def test_cassette(served: str, tmp_path: Path) -> None:
    dialect = next(d for d, port in PORTS.items() if served.endswith(f":{port}{API_PATHS[d]}"))
    profile = PROFILES[dialect]

    async def main() -> None:
        async with make_client(profile, base_url=served, api_key=KEY, sleep=_pause,
                               retry=RetryPolicy(max_retries=1, jitter=0.0)) as api:
            size = "848x480" if dialect == "xai" else "1280x720"
            video = await api.create(prompt="a lighthouse at dusk", size=size, seconds=SECONDS[dialect])
            assert video.status in ("queued", "in_progress") and video.id
            for _ in range(400):  # bounded by the recorded answers, not by time
                polled, _hint = await api.poll(video.id)
                if polled.done:
                    break
                await _pause(0)
            assert polled.status == "completed", polled
            path = await api.download(video.id, tmp_path / "v.mp4")
            assert path.read_bytes()[4:8] == b"ftyp"
            if profile.capabilities.reports_cost:
                assert polled.extra["cost_usd"] > 0

    asyncio.run(main())


def test_provider_cassettes_say_where_they_came_from() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == len(PORTS), "provider cassettes missing: record them with SORA_NB_RECORD=1"
    for path in files:
        text = path.read_text()
        assert text.startswith("# Recorded from the sora_nb simulator's"), path
        assert "Not recorded from the service itself" in text and KEY not in text
        assert path.stat().st_size < 200_000, f"{path} is large: record smaller clips"
