"""The embedded simulator: lifecycle maths, validation, pagination, derived jobs, faults, audit,
expiry and the rendered assets. In-process through SimulatorTransport, with an injected clock:
nothing here sleeps."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import statistics
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image
from support import T0, FakeClock, image_bytes

from sora_nb._catalog import MODELS, SECONDS, SIZES
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, add_arguments, create_app, render_video
from sora_nb.simulator._faults import RateLimiter, format_reset
from sora_nb.simulator._lifecycle import Plan, job_multiplier, plan_job, state_at
from sora_nb.simulator._render import RenderSpec, ensure_rendered, output_dimensions
from sora_nb.simulator._serve import config_from_args, run
from sora_nb.simulator._validate import nest_form_items

BASE = "http://simulator.local/v1"
AUTH = {"authorization": "Bearer sk-test"}
"""The simulator, like the service, answers 401 to a request without a key; any key will do."""


class Sim:
    """A simulator behind SimulatorTransport, driven with synchronous calls for readable tests."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.clock = FakeClock()
        self.transport = SimulatorTransport(config, clock=self.clock)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url=BASE, headers=AUTH) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def create(self, prompt: str = "a corgi surfing at sunset", **fields: Any) -> dict[str, Any]:
        response = self.post("/videos", json={"prompt": prompt, **fields})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def finish(self) -> None:
        """Move the clock far enough for every job so far to end (well inside the 24 h expiry)."""
        self.clock.advance(3600)

    def completed(self, prompt: str = "a corgi surfing at sunset", **fields: Any) -> dict[str, Any]:
        video = self.create(prompt, **fields)
        self.finish()
        body: dict[str, Any] = self.get(f"/videos/{video['id']}").json()
        assert body["status"] == "completed"
        return body


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One render cache for the module, so identical renders are made once."""
    return str(tmp_path_factory.mktemp("sim-cache"))


@pytest.fixture
def sim(cache_dir: str) -> Sim:
    return Sim(SimulatorConfig(seed=11, time_scale=0.01, cache_dir=cache_dir))


def make_sim(cache_dir: str, **options: Any) -> Sim:
    return Sim(SimulatorConfig(seed=11, time_scale=0.01, cache_dir=cache_dir, **options))


def assert_error(response: httpx.Response, status: int, code: str | None, param: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["param"] == param
    assert isinstance(error["message"], str) and error["message"]
    message: str = error["message"]
    return message


# Lifecycle: pure functions.


def test_plan_is_deterministic_for_a_seed() -> None:
    config = SimulatorConfig(time_scale=0.5)
    plans_a = [plan_job(random.Random(5), "sora-2", "720x1280", 4, config) for _ in range(3)]
    plans_b = [plan_job(random.Random(5), "sora-2", "720x1280", 4, config) for _ in range(3)]
    assert plans_a == plans_b
    assert plan_job(random.Random(6), "sora-2", "720x1280", 4, config) != plans_a[0]


def test_state_moves_forward_with_monotonic_integer_progress() -> None:
    plan = plan_job(random.Random(1), "sora-2-pro", "1792x1024", 12, SimulatorConfig(time_scale=0.01))
    order = {"queued": 0, "in_progress": 1, "completed": 2}
    last_status, last_progress = "queued", 0
    seen = set()
    t = plan.created_at
    while t < plan.finished_at + 1:
        status, progress = state_at(plan, t)
        assert isinstance(progress, int) and 0 <= progress <= 100
        assert order[status] >= order[last_status]
        assert progress >= last_progress
        if status != "completed":
            assert progress < 100
        seen.add(status)
        last_status, last_progress = status, progress
        t += plan.run_s / 37
    assert seen == {"queued", "in_progress", "completed"}
    assert state_at(plan, plan.finished_at) == ("completed", 100)


def test_durations_scale_with_time_scale_seconds_model_and_size() -> None:
    slow, fast = SimulatorConfig(time_scale=1.0), SimulatorConfig(time_scale=0.01)
    a = plan_job(random.Random(3), "sora-2", "720x1280", 4, slow)
    b = plan_job(random.Random(3), "sora-2", "720x1280", 4, fast)
    assert b.run_s == pytest.approx(a.run_s * 0.01)
    assert b.queued_s == pytest.approx(a.queued_s * 0.01)
    base = job_multiplier("sora-2", "720x1280", 4, slow)
    assert job_multiplier("sora-2", "720x1280", 12, slow) > job_multiplier("sora-2", "720x1280", 8, slow) > base
    assert job_multiplier("sora-2-pro", "720x1280", 4, slow) == pytest.approx(2.5 * base)
    assert job_multiplier("sora-2-pro", "1024x1792", 4, slow) == pytest.approx(2.5 * 1.5 * base)
    assert job_multiplier("gateway/some-pro-model", "720x1280", 4, slow) == pytest.approx(2.5)


def test_median_duration_of_a_4s_sora2_clip_is_about_a_minute() -> None:
    rng = random.Random(0)
    config = SimulatorConfig()
    totals = [
        plan.queued_s + plan.run_s for plan in (plan_job(rng, "sora-2", "720x1280", 4, config) for _ in range(400))
    ]
    assert 55 < statistics.median(totals) < 80


def test_failures_marker_and_rate_without_shifting_later_draws() -> None:
    config = SimulatorConfig(failure_rate=1.0)
    marked = plan_job(random.Random(2), "sora-2", "720x1280", 4, config, prompt="a cat [fail]")
    assert marked.error_code == "moderation_blocked" and marked.outcome == "failed"
    random_fail = plan_job(random.Random(2), "sora-2", "720x1280", 4, config, prompt="a cat")
    assert random_fail.error_code == "internal_error"
    status, progress = state_at(random_fail, random_fail.finished_at)
    assert status == "failed" and 0 < progress < 100
    assert state_at(random_fail, random_fail.finished_at - 1e-6)[0] == "in_progress"
    # Same number of draws whatever the outcome: the next job's plan is unchanged.
    rng_a, rng_b = random.Random(9), random.Random(9)
    plan_job(rng_a, "sora-2", "720x1280", 4, SimulatorConfig(), prompt="x [fail]")
    plan_job(rng_b, "sora-2", "720x1280", 4, SimulatorConfig(), prompt="x")
    assert plan_job(rng_a, "sora-2", "720x1280", 4, SimulatorConfig()) == plan_job(
        rng_b, "sora-2", "720x1280", 4, SimulatorConfig()
    )
    assert SimulatorConfig(fail_marker=None).fail_marker is None


def test_state_at_boundaries() -> None:
    plan = Plan(created_at=100.0, queued_s=2.0, run_s=10.0)
    assert state_at(plan, 100.0) == ("queued", 0)
    assert state_at(plan, 102.0) == ("in_progress", 0)
    assert state_at(plan, 111.99) == ("in_progress", 99)
    assert state_at(plan, 112.0) == ("completed", 100)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        SimulatorConfig(time_scale=0)
    with pytest.raises(ValueError, match="drop_rate"):
        SimulatorConfig(drop_rate=1.5)
    with pytest.raises(ValueError, match="rate_limit_rpm"):
        SimulatorConfig(rate_limit_rpm=0)
    with pytest.raises(ValueError, match="distinct_renders must be a positive integer"):
        SimulatorConfig(distinct_renders=0)
    assert SimulatorConfig(api_keys=frozenset({"k"})).api_keys == frozenset({"k"})


def test_rate_limiter_window_and_reset_format() -> None:
    limiter = RateLimiter(limit=2, window_s=10.0)
    assert limiter.check("a", 0.0).remaining == 1
    assert limiter.check("a", 1.0).remaining == 0
    denied = limiter.check("a", 2.0)
    assert not denied.allowed and denied.reset_s == pytest.approx(8.0)
    assert limiter.check("b", 2.0).allowed
    assert limiter.check("a", 10.0).allowed
    unlimited = RateLimiter(limit=None, window_s=1.0, nominal_limit=1)
    assert all(unlimited.check("a", 0.0).allowed for _ in range(5))
    assert format_reset(6.5) == "6.5s" and format_reset(61) == "1m1s"


# Validation: status, code, param and message of each rejection.


@pytest.mark.parametrize(
    ("body", "code", "param", "fragment"),
    [
        ({"prompt": "a cat", "seconds": 8}, "invalid_type", "seconds", "got an integer"),
        ({"prompt": "a cat", "seconds": "5"}, "invalid_value", "seconds", "'4', '8', and '12'"),
        ({"prompt": "a cat", "size": "1792x1024"}, "invalid_value", "size", "'720x1280' and '1280x720'"),
        ({"prompt": "a cat", "size": "640x480"}, "invalid_value", "size", "'1024x1792'"),
        ({"prompt": "a cat", "size": 720}, "invalid_type", "size", "got an integer"),
        ({"seconds": "4"}, "missing_required_parameter", "prompt", "Missing required parameter: 'prompt'"),
        ({"prompt": ""}, "string_below_min_length", "prompt", "minimum length 1"),
        ({"prompt": "x" * 32001}, "string_above_max_length", "prompt", "maximum length 32000"),
        ({"prompt": 5}, "invalid_type", "prompt", "expected a string"),
        ({"prompt": "a cat", "model": "sora-3"}, "invalid_value", "model", "'sora-2'"),
        ({"prompt": "a cat", "fps": 30}, "unknown_parameter", "fps", "Unrecognized request argument"),
        (
            {"prompt": "a cat", "input_reference": {"image_url": "https://x/y.png", "file_id": "file-1"}},
            "invalid_value",
            "input_reference",
            "exactly one",
        ),
        ({"prompt": "a cat", "input_reference": {}}, "invalid_value", "input_reference", "exactly one"),
        ({"prompt": "a cat", "input_reference": "img"}, "invalid_type", "input_reference", "got a string"),
    ],
)
def test_create_validation_errors(sim: Sim, body: dict[str, Any], code: str, param: str, fragment: str) -> None:
    message = assert_error(sim.post("/videos", json=body), 400, code, param)
    assert fragment in message
    assert sim.transport.audit() == []


def test_pro_model_accepts_large_sizes_and_multipart_strings(sim: Sim) -> None:
    video = sim.create(model="sora-2-pro", size="1792x1024", seconds="12")
    assert (video["model"], video["size"], video["seconds"]) == ("sora-2-pro", "1792x1024", "12")
    form = sim.post("/videos", files=[("prompt", (None, "a cat")), ("seconds", (None, "8"))])
    assert form.status_code == 200 and form.json()["seconds"] == "8"
    urlencoded = sim.post("/videos", data={"prompt": "a cat", "seconds": "8"})
    assert urlencoded.status_code == 200 and urlencoded.json()["seconds"] == "8"
    assert form.json()["size"] == "720x1280" and form.json()["model"] == "sora-2"


def test_lenient_models_behave_like_a_gateway(cache_dir: str) -> None:
    lenient = make_sim(cache_dir, strict_models=False)
    video = lenient.create(model="my-gateway/video-model", extra_field=1)
    assert video["model"] == "my-gateway/video-model"
    assert_error(lenient.post("/videos", json={"prompt": "a", "seconds": 4}), 400, "invalid_type", "seconds")


def test_input_reference_checks(sim: Sim) -> None:
    good = image_bytes((1280, 720))
    ok = sim.post(
        "/videos",
        data={"prompt": "a red room", "size": "1280x720"},
        files={"input_reference": ("ref.png", good, "image/png")},
    )
    assert ok.status_code == 200, ok.text
    wrong = sim.post(
        "/videos",
        data={"prompt": "a red room", "size": "1280x720"},
        files={"input_reference": ("ref.png", image_bytes((720, 1280)), "image/png")},
    )
    message = assert_error(wrong, 400, "invalid_value", "input_reference")
    assert message.startswith("Inpaint image must match the requested width and height")
    gif = sim.post(
        "/videos",
        data={"prompt": "a red room", "size": "1280x720"},
        files={"input_reference": ("ref.gif", image_bytes((1280, 720), "GIF"), "image/gif")},
    )
    assert "image/jpeg, image/png, image/webp" in assert_error(gif, 400, "unsupported_file_format", "input_reference")
    junk = sim.post("/videos", data={"prompt": "x"}, files={"input_reference": ("r.png", b"not an image", "image/png")})
    assert_error(junk, 400, "unsupported_file_format", "input_reference")
    data_url = "data:image/webp;base64," + base64.b64encode(image_bytes((720, 1280), "WEBP")).decode()
    assert sim.post("/videos", json={"prompt": "x", "input_reference": {"image_url": data_url}}).status_code == 200
    sdk_style = sim.post("/videos", files=[("prompt", (None, "x")), ("input_reference[file_id]", (None, "file-123"))])
    assert sdk_style.status_code == 200, sdk_style.text
    assert len(sim.transport.audit()) == 3


def test_bad_bodies_unknown_ids_and_urls(sim: Sim) -> None:
    bad_json = sim.post("/videos", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(bad_json, 400, "invalid_json", None)
    assert_error(sim.post("/videos", json=["a"]), 400, "invalid_type", None)
    assert_error(sim.get("/videos/video_nope"), 404, "video_not_found", "video_id")
    assert_error(sim.delete("/videos/video_nope"), 404, "video_not_found", "video_id")
    assert_error(sim.get("/videos/video_nope/content"), 404, "video_not_found", "video_id")
    assert_error(sim.post("/videos/video_nope/remix", json={"prompt": "x"}), 404, "video_not_found", "video_id")
    assert "Invalid URL (GET /v1/models)" in assert_error(sim.get("/models"), 404, "unknown_url", None)
    assert_error(sim.request("PUT", "/videos"), 405, "method_not_allowed", None)
    video = sim.create()
    sim.finish()
    assert_error(sim.get(f"/videos/{video['id']}/content?variant=gif"), 400, "invalid_value", "variant")


# Listing, retrieving and deleting.


def test_list_pagination_over_many_jobs(sim: Sim) -> None:
    created = []
    for index in range(45):
        created.append(sim.create(f"clip {index}")["id"])
        sim.clock.advance(0.5)
    default = sim.get("/videos").json()
    assert len(default["data"]) == 20 and default["has_more"] is True
    assert default["first_id"] == created[-1]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 20, **({"after": after} if after else {})}
        page = sim.get("/videos", params=params).json()
        pages += 1
        seen += [video["id"] for video in page["data"]]
        assert page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert pages == 3 and seen == created[::-1]
    ascending = sim.get("/videos", params={"order": "asc", "limit": 100}).json()
    assert [video["id"] for video in ascending["data"]] == created and ascending["has_more"] is False
    empty = sim.get("/videos", params={"limit": 0}).json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": True}
    # A cursor that was deleted between pages still works.
    assert sim.delete(f"/videos/{created[30]}").status_code == 200
    after_deleted = sim.get("/videos", params={"after": created[30], "limit": 3}).json()
    assert [video["id"] for video in after_deleted["data"]] == created[29:26:-1]


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"limit": "101"}, "integer_above_max_value", "limit"),
        ({"limit": "-1"}, "integer_below_min_value", "limit"),
        ({"limit": "ten"}, "invalid_type", "limit"),
        ({"order": "newest"}, "invalid_value", "order"),
        ({"after": "video_unknown"}, "invalid_value", "after"),
    ],
)
def test_list_validation(sim: Sim, params: dict[str, str], code: str, param: str) -> None:
    assert_error(sim.get("/videos", params=params), 400, code, param)


def test_retrieve_follows_the_clock_and_delete_cancels(sim: Sim) -> None:
    video = sim.create(seconds="8")
    statuses = []
    progress = []
    for _ in range(60):
        body = sim.get(f"/videos/{video['id']}").json()
        statuses.append(body["status"])
        progress.append(body["progress"])
        sim.clock.advance(0.05)
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "in_progress" in statuses and progress == sorted(progress)
    done = sim.get(f"/videos/{video['id']}").json()
    assert done["completed_at"] >= done["created_at"] and done["expires_at"] == done["created_at"] + 24 * 3600

    running = sim.create()
    deleted = sim.delete(f"/videos/{running['id']}")
    assert deleted.json() == {"id": running["id"], "object": "video.deleted", "deleted": True}
    assert_error(sim.get(f"/videos/{running['id']}"), 404, "video_not_found", "video_id")
    assert_error(sim.delete(f"/videos/{running['id']}"), 404, "video_not_found", "video_id")
    assert running["id"] in [entry["id"] for entry in sim.transport.audit()]
    assert running["id"] not in [v["id"] for v in sim.get("/videos").json()["data"]]


def test_failed_jobs(cache_dir: str) -> None:
    sim = make_sim(cache_dir)
    video = sim.create("a scene [fail]")
    sim.finish()
    body = sim.get(f"/videos/{video['id']}").json()
    assert body["status"] == "failed" and body["error"]["code"] == "moderation_blocked"
    assert body["expires_at"] is None and body["completed_at"] is not None
    assert_error(sim.get(f"/videos/{video['id']}/content"), 409, "video_not_ready", "video_id")
    flaky = make_sim(cache_dir, failure_rate=1.0)
    other = flaky.create("fine prompt")
    flaky.finish()
    assert flaky.get(f"/videos/{other['id']}").json()["error"]["code"] == "internal_error"


# Remix, extensions, edits, characters.


def test_remix(sim: Sim) -> None:
    pending = sim.create("a cat")
    assert_error(sim.post(f"/videos/{pending['id']}/remix", json={"prompt": "b"}), 409, "video_not_ready", "video_id")
    sim.finish()
    remix = sim.post(f"/videos/{pending['id']}/remix", json={"prompt": "the cat at night"})
    assert remix.status_code == 200
    body = remix.json()
    assert body["remixed_from_video_id"] == pending["id"] and body["id"] != pending["id"]
    assert (body["prompt"], body["seconds"], body["status"]) == ("the cat at night", "4", "queued")
    assert_error(sim.post(f"/videos/{pending['id']}/remix", json={}), 400, "missing_required_parameter", "prompt")
    form = sim.post(f"/videos/{pending['id']}/remix", files=[("prompt", (None, "by day"))])
    assert form.status_code == 200
    assert [entry["kind"] for entry in sim.transport.audit()] == ["create", "remix", "remix"]


def test_extensions_stitch_and_enforce_limits(sim: Sim) -> None:
    source = sim.completed("a ship at sea", seconds="12")
    ext = sim.post("/videos/extensions", json={"video": {"id": source["id"]}, "prompt": "a storm", "seconds": "8"})
    assert ext.status_code == 200, ext.text
    assert ext.json()["seconds"] == "20" and ext.json()["remixed_from_video_id"] is None
    assert_error(
        sim.post("/videos/extensions", json={"video": {"id": ext.json()["id"]}, "prompt": "x", "seconds": "4"}),
        409,
        "video_not_ready",
        "video_id",
    )
    too_long = sim.post("/videos/extensions", json={"video": {"id": source["id"]}, "prompt": "x", "seconds": "24"})
    assert "at most 20 seconds" in assert_error(too_long, 400, "invalid_value", "seconds")
    missing = sim.post("/videos/extensions", json={"video": {"id": source["id"]}, "prompt": "x"})
    assert_error(missing, 400, "missing_required_parameter", "seconds")
    assert_error(
        sim.post("/videos/extensions", json={"prompt": "x", "seconds": "4"}), 400, "missing_required_parameter", "video"
    )

    # Chain: 12 + 6 x 12 = 84 s is allowed; a seventh extension is not.
    current = source["id"]
    for _ in range(6):
        sim.finish()
        step = sim.post("/videos/extensions", json={"video": {"id": current}, "prompt": "more", "seconds": "12"})
        assert step.status_code == 200, step.text
        current = step.json()["id"]
    assert step.json()["seconds"] == "84"
    sim.finish()
    seventh = sim.post("/videos/extensions", json={"video": {"id": current}, "prompt": "more", "seconds": "4"})
    assert "at most 6 extensions" in assert_error(seventh, 400, "invalid_value", "video")


def test_extension_total_is_bounded(sim: Sim) -> None:
    # Catalog durations cannot reach 120 s through six extensions, so plant a long video in the state.
    long = sim.transport.state.create_job("create", model="sora-2", size="720x1280", seconds=112, prompt="long")
    sim.finish()
    over = sim.post("/videos/extensions", json={"video": {"id": long.id}, "prompt": "on", "seconds": "12"})
    assert "at most 120 seconds" in assert_error(over, 400, "invalid_value", "seconds")
    ok = sim.post("/videos/extensions", json={"video": {"id": long.id}, "prompt": "on", "seconds": "8"})
    assert ok.status_code == 200 and ok.json()["seconds"] == "120"
    # Generation time follows the new 8 s segment, not the stitched 120 s.
    extend = sim.transport.audit()[-1]
    assert extend["kind"] == "extend" and extend["run_s"] < 60 * 0.01 * 2 * 3


def test_edits_by_id_and_by_upload(sim: Sim) -> None:
    source = sim.completed("a garden", size="1280x720")
    edit = sim.post("/videos/edits", json={"video": {"id": source["id"]}, "prompt": "make it winter"})
    assert edit.status_code == 200, edit.text
    assert (edit.json()["size"], edit.json()["prompt"]) == ("1280x720", "make it winter")
    clip = sim.get(f"/videos/{source['id']}/content").content
    upload = sim.post("/videos/edits", data={"prompt": "add snow"}, files={"video": ("in.mp4", clip, "video/mp4")})
    assert upload.status_code == 200, upload.text
    assert (upload.json()["size"], upload.json()["seconds"]) == ("1280x720", "4")
    sdk_style = sim.post("/videos/edits", files=[("prompt", (None, "x")), ("video[id]", (None, source["id"]))])
    assert sdk_style.status_code == 200, sdk_style.text
    junk = sim.post("/videos/edits", data={"prompt": "x"}, files={"video": ("in.mp4", b"\x00" * 100, "video/mp4")})
    assert_error(junk, 400, "invalid_video", "video")
    assert_error(sim.post("/videos/edits", json={"video": "abc", "prompt": "x"}), 400, "invalid_type", "video")
    assert [entry["kind"] for entry in sim.transport.audit()].count("edit") == 3


def test_characters(sim: Sim, tmp_path: Path) -> None:
    four = sim.completed("a friendly robot", seconds="4")
    preview = sim.get(f"/videos/{four['id']}/content").content  # the simulator's own 180x320: below 720p
    small = sim.post("/videos/characters", data={"name": "Robo"}, files={"video": ("r.mp4", preview, "video/mp4")})
    assert "720p to 1080p" in assert_error(small, 400, "invalid_value", "video")
    clip = render_video(tmp_path, prompt="a friendly robot", seconds=4, size="720x1280", max_side=1280,
                        fps=4).read_bytes()
    made = sim.post("/videos/characters", data={"name": "Robo"}, files={"video": ("robo.mp4", clip, "video/mp4")})
    assert made.status_code == 200, made.text
    character = made.json()
    assert character["name"] == "Robo" and character["id"].startswith("char_")
    assert sim.get(f"/videos/characters/{character['id']}").json() == character
    assert_error(sim.get("/videos/characters/char_nope"), 404, "character_not_found", "character_id")
    assert_error(sim.post("/videos/characters", json={"name": "x"}), 400, "invalid_type", "video")
    no_name = sim.post("/videos/characters", files={"video": ("robo.mp4", clip, "video/mp4")})
    assert_error(no_name, 400, "missing_required_parameter", "name")
    long_name = sim.post("/videos/characters", data={"name": "n" * 81}, files={"video": ("r.mp4", clip, "video/mp4")})
    assert_error(long_name, 400, "invalid_value", "name")
    eight = sim.completed("a long robot clip", seconds="8")
    long_clip = sim.get(f"/videos/{eight['id']}/content").content
    too_long = sim.post("/videos/characters", data={"name": "R"}, files={"video": ("r.mp4", long_clip, "video/mp4")})
    assert "2 to 4 seconds" in assert_error(too_long, 400, "invalid_value", "video")


# Faults.


def test_rate_limit_429_with_headers_and_envelope(cache_dir: str) -> None:
    sim = make_sim(cache_dir, rate_limit_rpm=2)
    headers = {"authorization": "Bearer sk-one"}
    first = sim.get("/videos", headers=headers)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert sim.get("/videos", headers=headers).status_code == 200
    limited = sim.get("/videos", headers=headers)
    error = limited.json()["error"]
    assert limited.status_code == 429 and error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert int(limited.headers["retry-after"]) >= 1 and int(limited.headers["retry-after-ms"]) > 0
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.headers["x-request-id"].startswith("req_")
    assert sim.get("/videos", headers={"authorization": "Bearer sk-two"}).status_code == 200
    sim.clock.advance(60 * 0.01)  # the window is one minute of simulated time
    assert sim.get("/videos", headers=headers).status_code == 200


def test_create_rate_limit_counts_only_creates(cache_dir: str) -> None:
    sim = make_sim(cache_dir, create_rate_limit_rpm=1)
    sim.create()
    limited = sim.post("/videos", json={"prompt": "again"})
    assert limited.status_code == 429 and "video creations" in limited.json()["error"]["message"]
    assert sim.get("/videos").status_code == 200
    assert len(sim.transport.audit()) == 1


def test_random_server_errors_are_seeded_and_create_nothing(cache_dir: str) -> None:
    def statuses() -> list[int]:
        sim = make_sim(cache_dir, error_rate=0.5)
        return [sim.post("/videos", json={"prompt": "x"}).status_code for _ in range(12)]

    first = statuses()
    assert first == statuses()
    assert {status for status in first if status != 200} <= {500, 502, 503}
    sim = make_sim(cache_dir, error_rate=1.0)
    failed = sim.post("/videos", json={"prompt": "x"})
    assert failed.status_code in (500, 502, 503)
    assert failed.json()["error"]["type"] == "server_error"
    assert sim.transport.audit() == []


def test_dropped_connection_raises_the_httpx_error(cache_dir: str) -> None:
    sim = make_sim(cache_dir, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        sim.post("/videos", json={"prompt": "x"})
    assert sim.transport.audit() == []
    # Outside /v1 nothing is dropped: the audit stays reachable.
    assert sim.get("http://simulator.local/_simulator/audit").json() == []


def test_drop_after_create_is_audited_but_the_answer_is_lost(cache_dir: str) -> None:
    sim = make_sim(cache_dir, drop_after_create_rate=1.0)
    with pytest.raises(httpx.ReadError):
        sim.post("/videos", json={"prompt": "the ambiguous create"})
    audit = sim.transport.audit()
    assert [entry["prompt"] for entry in audit] == ["the ambiguous create"]
    listed = sim.get("/videos").json()["data"]
    assert [video["id"] for video in listed] == [audit[0]["id"]]  # the client can reconcile by listing
    assert sim.get(f"/videos/{audit[0]['id']}").status_code == 200  # reads are not dropped


def test_latency_and_poll_after(cache_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(anyio, "sleep", fake_sleep)
    sim = make_sim(cache_dir, latency=0.25, poll_after_ms=1500)
    video = sim.create()
    retrieved = sim.get(f"/videos/{video['id']}")
    assert retrieved.headers["openai-poll-after-ms"] == "1500"
    assert "openai-poll-after-ms" not in sim.get("/videos").headers
    assert delays == [0.25, 0.25, 0.25]


def test_api_keys(cache_dir: str) -> None:
    sim = make_sim(cache_dir, api_keys=frozenset({"sk-good-key"}))
    missing = sim.get("/videos", headers={"authorization": ""})  # no key at all
    assert_error(missing, 401, "missing_api_key", None)
    wrong = sim.get("/videos", headers={"authorization": "Bearer sk-wrong-secret"})
    assert "sk-wrong-secret" not in assert_error(wrong, 401, "invalid_api_key", None)
    good = sim.post("/videos", json={"prompt": "x"}, headers={"authorization": "Bearer sk-good-key"})
    assert good.status_code == 200
    audit = sim.get("http://simulator.local/_simulator/audit").json()
    assert audit[0]["api_key_hash"] and "sk-good-key" not in str(audit)


def test_a_request_without_a_key_is_a_401_and_any_key_is_accepted(cache_dir: str) -> None:
    """As the service: no ``Authorization`` header is a 401 in OpenAI's envelope, even with ``api_keys=None``
    (before: accepted); with ``api_keys=None`` any key will do."""
    sim = make_sim(cache_dir)
    for no_key in ({"authorization": ""}, {"authorization": "Bearer "}, {"authorization": "Basic abc"}):
        message = assert_error(sim.get("/videos", headers=no_key), 401, "missing_api_key", None)
        assert "Authorization: Bearer" in message
        assert sim.post("/videos", json={"prompt": "x"}, headers=no_key).status_code == 401
    assert sim.get("/videos", headers={"authorization": "Bearer whatever-key"}).status_code == 200
    assert sim.get("http://simulator.local/_simulator/audit", headers={"authorization": ""}).json() == []


@pytest.mark.slow
def test_the_served_simulator_401s_a_missing_key_unless_keys_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sora-nb simulator``: no header is a 401; any key passes unless ``--api-keys-env`` names the keys."""
    import argparse

    from sora_nb.simulator import start_server

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("SIM_KEYS", "sk-only")
    for argv, anyone in (([], 200), (["--api-keys-env=SIM_KEYS"], 401)):
        with start_server(config_from_args(parser.parse_args(["--time-scale=0.01", *argv]))) as server:
            bare = httpx.get(f"{server.base_url}/videos", timeout=10)
            assert bare.status_code == 401 and bare.json()["error"]["type"] == "invalid_request_error"
            assert httpx.get(f"{server.base_url}/videos", headers={"authorization": "Bearer sk-any"},
                             timeout=10).status_code == anyone
            assert httpx.get(f"{server.base_url}/videos", headers={"authorization": "Bearer sk-only"},
                             timeout=10).status_code == 200


@pytest.mark.parametrize("field", ["model", "size", "seconds"])
def test_a_null_create_field_is_a_400_as_in_the_spec(sim: Sim, field: str) -> None:
    """The spec's create fields are not nullable (before: ``"model": null`` made a sora-2 job)."""
    response = sim.post("/videos", json={"prompt": "a fox", field: None})
    assert "null" in assert_error(response, 400, "invalid_type", field)
    assert sim.get("http://simulator.local/_simulator/audit").json() == []


def test_every_response_has_request_id_and_rate_headers(sim: Sim) -> None:
    video = sim.create()
    responses = [
        sim.get(f"/videos/{video['id']}"),
        sim.post("/videos", json={}),
        sim.get("/videos/nope"),
        sim.get("/nothing"),
        sim.get("http://simulator.local/_simulator/audit"),
    ]
    ids = set()
    for response in responses:
        assert response.headers["x-request-id"].startswith("req_")
        ids.add(response.headers["x-request-id"])
        for name in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"):
            assert name in response.headers
    assert len(ids) == len(responses)


def test_ids_are_deterministic_for_a_seed(cache_dir: str) -> None:
    first = [make_sim(cache_dir).create("x")["id"] for _ in range(2)]
    assert first[0] == first[1]
    assert make_sim(cache_dir, error_rate=0.0, drop_rate=0.0).create("x")["id"] == first[0]
    assert Sim(SimulatorConfig(seed=12, cache_dir=cache_dir)).create("x")["id"] != first[0]


# Audit and expiry.


def test_audit_records_every_accepted_create_with_its_plan(sim: Sim) -> None:
    source = sim.completed("a lighthouse")
    sim.post(f"/videos/{source['id']}/remix", json={"prompt": "in fog"})
    sim.post("/videos/edits", json={"video": {"id": source["id"]}, "prompt": "in rain"})
    sim.post("/videos/extensions", json={"video": {"id": source["id"]}, "prompt": "waves", "seconds": "4"})
    sim.post("/videos", json={"prompt": ""})  # rejected: not audited
    audit = sim.get("http://simulator.local/_simulator/audit").json()
    assert audit == sim.transport.audit()
    assert [entry["kind"] for entry in audit] == ["create", "remix", "edit", "extend"]
    for entry in audit:
        assert {"id", "prompt", "model", "size", "seconds", "created_at", "queued_s", "run_s"} <= set(entry)
        assert entry["started_at_s"] == pytest.approx(entry["created_at_s"] + entry["queued_s"])
        assert entry["completed_at_s"] == pytest.approx(entry["started_at_s"] + entry["run_s"])
        assert 0 < entry["run_s"] < 10  # time_scale 0.01 of a minute or so
        assert entry["api_key_hash"] and "sk-test" not in str(entry)  # a hash of the key, never the key
    assert audit[3]["seconds"] == "8" and audit[3]["source_video_id"] == source["id"]


def test_assets_expire(cache_dir: str) -> None:
    sim = make_sim(cache_dir, asset_ttl=100.0)
    video = sim.create("expiring")
    sim.clock.advance(50)
    done = sim.get(f"/videos/{video['id']}").json()
    assert done["status"] == "completed" and done["expires_at"] == done["created_at"] + 100
    assert sim.get(f"/videos/{video['id']}/content?variant=thumbnail").status_code == 200
    sim.clock.advance(51)
    assert_error(sim.get(f"/videos/{video['id']}/content"), 404, "video_expired", "video_id")
    assert sim.get(f"/videos/{video['id']}").json()["status"] == "completed"


# Rendering.


def _boxes(data: bytes) -> list[bytes]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8])
        if size < 8:
            break
        offset += size
    return boxes


@pytest.mark.parametrize(("size", "seconds"), [("720x1280", "4"), ("1792x1024", "8")])
def test_rendered_assets(sim: Sim, size: str, seconds: str) -> None:
    video = sim.completed(f"a lighthouse at dusk {size}", size=size, seconds=seconds, model="sora-2-pro")
    response = sim.get(f"/videos/{video['id']}/content")
    assert response.headers["content-type"] == "video/mp4"
    data = response.content
    assert data[4:8] == b"ftyp"
    boxes = _boxes(data)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # faststart
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = sum(1 for _ in container.decode(stream))
    requested_w, requested_h = (int(v) for v in size.split("x"))
    assert max(width, height) == 320 and width % 2 == 0 and height % 2 == 0
    assert width / height == pytest.approx(requested_w / requested_h, rel=0.02)
    assert abs(frames - int(seconds) * 12) <= 1

    thumbnail = sim.get(f"/videos/{video['id']}/content", params={"variant": "thumbnail"})
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.content[:4] == b"RIFF" and thumbnail.content[8:12] == b"WEBP"
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert image.format == "WEBP" and image.size == (width, height)
    sprites = sim.get(f"/videos/{video['id']}/content", params={"variant": "spritesheet"})
    assert sprites.headers["content-type"] == "image/jpeg" and sprites.content[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(sprites.content)) as image:
        assert image.format == "JPEG" and image.width > width


def test_extension_renders_the_stitched_length(sim: Sim) -> None:
    source = sim.completed("a train", seconds="4")
    ext = sim.post("/videos/extensions", json={"video": {"id": source["id"]}, "prompt": "a tunnel", "seconds": "4"})
    sim.finish()
    data = sim.get(f"/videos/{ext.json()['id']}/content").content
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8 * 12


def test_render_depends_on_prompt_and_is_cached_atomically(tmp_path: Path) -> None:
    spec_a = RenderSpec((("a red fox", 1),), "1280x720", 64, 4)
    spec_b = RenderSpec((("a blue whale", 1),), "1280x720", 64, 4)
    assert spec_a.key() != spec_b.key() and spec_a.key() == RenderSpec((("a red fox", 1),), "1280x720", 64, 4).key()
    assets_a = ensure_rendered(spec_a, str(tmp_path))
    mtime = assets_a.video.stat().st_mtime_ns
    assert ensure_rendered(spec_a, str(tmp_path)).video.stat().st_mtime_ns == mtime  # cached
    assets_b = ensure_rendered(spec_b, str(tmp_path))
    with Image.open(assets_a.thumbnail) as a, Image.open(assets_b.thumbnail) as b:
        assert a.convert("RGB").getpixel((2, 2)) != b.convert("RGB").getpixel((2, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([spec_a.key(), spec_b.key()])


def test_concurrent_content_requests_render_once(tmp_path: Path) -> None:
    clock = FakeClock()
    transport = SimulatorTransport(SimulatorConfig(seed=3, time_scale=0.01, cache_dir=str(tmp_path)), clock=clock)

    async def scenario() -> list[bytes]:
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
            video = (await client.post("/videos", json={"prompt": "many readers"})).json()
            clock.advance(3600)
            responses = await asyncio.gather(*(client.get(f"/videos/{video['id']}/content") for _ in range(4)))
            return [response.content for response in responses]

    bodies = asyncio.run(scenario())
    assert len(set(bodies)) == 1 and bodies[0][4:8] == b"ftyp"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_output_dimensions_are_even_and_keep_aspect() -> None:
    for size in SIZES:
        width, height = output_dimensions(size, 320)
        w, h = (int(v) for v in size.split("x"))
        assert width % 2 == 0 and height % 2 == 0 and max(width, height) == 320
        assert width / height == pytest.approx(w / h, rel=0.02)


# Odds and ends.


def test_catalog_is_the_source_of_the_rules(sim: Sim) -> None:
    for model, spec in MODELS.items():
        for size in SIZES:
            response = sim.post("/videos", json={"prompt": "x", "model": model, "size": size, "seconds": SECONDS[0]})
            assert (response.status_code == 200) == (size in spec.sizes), (model, size)


def test_nest_form_items_keeps_text_fields() -> None:
    body = nest_form_items([("prompt", '{"not": "an object"}'), ("video", '{"id": "video_1"}')])
    assert body == {"prompt": '{"not": "an object"}', "video": {"id": "video_1"}}


def test_cli_options_map_to_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--seed=3",
            "--time-scale=0.05",
            "--rate-limit-rpm=25",
            "--drop-after-create-rate=0.1",
            "--asset-ttl=60",
            "--poll-after-ms=500",
            "--lenient-models",
            "--api-keys-env=SIM_KEYS",
        ]
    )
    monkeypatch.setenv("SIM_KEYS", "sk-a, sk-b")
    config = config_from_args(args)
    assert (config.seed, config.time_scale, config.rate_limit_rpm) == (3, 0.05, 25)
    assert (config.drop_after_create_rate, config.asset_ttl, config.poll_after_ms) == (0.1, 60.0, 500)
    assert config.strict_models is False and config.api_keys == frozenset({"sk-a", "sk-b"})
    monkeypatch.setenv("SIM_KEYS", "")
    assert run(args) == 2
    bad = parser.parse_args(["--error-rate=2"])
    assert run(bad) == 2


def test_create_app_is_a_starlette_app() -> None:
    from starlette.applications import Starlette

    app = create_app(SimulatorConfig(seed=1), clock=lambda: T0)
    assert isinstance(app, Starlette)


def test_longest_prompts_render_quickly_and_fit_the_frame(tmp_path: Path) -> None:
    import time

    from sora_nb.simulator._render import _font, _wrap

    font = _font(15)
    for text in ("x" * 32000, ("word " * 7000)[:32000], "   ", "a " * 10 + "supercalifragilistic" * 3):
        lines = _wrap(text, font, 150, 6)
        assert 1 <= len(lines) <= 6 and all(font.getlength(line) <= 150 for line in lines)
    started = time.perf_counter()
    ensure_rendered(RenderSpec((("x" * 32000, 1),), "720x1280", 96, 4), str(tmp_path))
    assert time.perf_counter() - started < 5  # the naive cut loop took minutes


def test_a_download_runs_no_anyio_worker_call_on_the_loop(cache_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's FileResponse read each file through anyio worker threads, and every such call looks
    for the loop's root task among all its tasks: on a kernel's loop (no root task to find) with 200 jobs
    in flight, bench_scale saw those searches block the loop for seconds. The bytes come in one hop of
    the simulator's own pool instead (the same bytes, content type and length)."""
    import anyio.to_thread

    sim = make_sim(cache_dir)
    video = sim.completed("one hop")
    expected = sim.get(f"/videos/{video['id']}/content")  # rendered now (the render may use any thread)

    async def no_anyio(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an anyio worker-thread call while serving a file")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_anyio)
    for variant, media_type in (("video", "video/mp4"), ("thumbnail", "image/webp")):
        response = sim.get(f"/videos/{video['id']}/content?variant={variant}")
        assert response.status_code == 200 and response.headers["content-type"] == media_type
        assert int(response.headers["content-length"]) == len(response.content) > 0
    again = sim.get(f"/videos/{video['id']}/content").content
    assert response.content != expected.content and again == expected.content


def _video_shape(data: bytes) -> tuple[int, int, int]:
    """``(width, height, frames)`` of an MP4's H.264 stream."""
    assert data[4:8] == b"ftyp"
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return stream.codec_context.width, stream.codec_context.height, sum(1 for _ in container.decode(stream))


def _renders(cache: Path) -> int:
    return sum(1 for p in cache.iterdir() if p.is_dir() and not p.name.startswith((".", "references")))


@pytest.mark.parametrize("distinct", [None, 2])
def test_distinct_renders_shares_real_videos_among_jobs_and_the_default_renders_each(
    tmp_path: Path, distinct: int | None
) -> None:
    """A load test's 10,000 jobs need not render 10,000 videos; by default every job still has its own."""
    sim = Sim(SimulatorConfig(seed=11, time_scale=0.01, cache_dir=str(tmp_path), max_side=64, fps=4,
                              distinct_renders=distinct))
    asks = [(f"prompt number {i}", size, seconds) for i, (size, seconds) in
            enumerate([("1280x720", "4"), ("1280x720", "4"), ("1280x720", "4"), ("720x1280", "8"), ("720x1280", "8")])]
    asks.append(("prompt number 0", "1280x720", "4"))  # the same prompt again
    ids = [sim.create(prompt, size=size, seconds=seconds)["id"] for prompt, size, seconds in asks]
    sim.finish()
    videos = []
    for video_id, (_, size, seconds) in zip(ids, asks, strict=True):
        assert sim.get(f"/videos/{video_id}").json()["status"] == "completed"
        data = sim.get(f"/videos/{video_id}/content").content
        assert _video_shape(data) == (*output_dimensions(size, 64), int(seconds) * 4)
        videos.append(data)
    assert [entry["id"] for entry in sim.transport.audit()] == ids  # every create is still counted
    if distinct is None:
        assert len(set(videos)) == len(asks) == _renders(tmp_path)  # each job its own, same prompt or not
    else:
        # Jobs 0-2 (1280x720, 4 s) and 3-4 (720x1280, 8 s), job 5 (1280x720, 4 s): k = seq % 2 + 1.
        assert videos[0] == videos[2] and videos[1] == videos[5] and videos[0] != videos[1]
        assert videos[3] != videos[4]
        assert _renders(tmp_path) == 4  # 2 per size and length, whatever the prompts


def test_the_simulators_blocking_work_runs_on_a_pool_of_its_own(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process the simulator lives in the user's kernel: its renders and file reads run on a pool of
    ``IN_PROCESS_THREADS`` named threads, not on the loop's default executor (6 threads on 2 cores, each keeping
    a glibc arena of what it freed: ~50 MB more at the peak of a 10,000-job sweep, benchmarks/README.md). Served
    as its own process it takes as many as that executor would (its renders then go faster)."""
    import threading

    import sora_nb
    from sora_nb.simulator import _routes, _store

    seen: set[str] = set()
    render = _routes.ensure_rendered

    def recorded(*args: Any) -> Any:
        seen.add(threading.current_thread().name)
        return render(*args)

    monkeypatch.setattr(_routes, "ensure_rendered", recorded)
    with sora_nb.connect("simulator", time_scale=0.002, run_root=tmp_path / "runs", measure=False,
                         simulator=SimulatorConfig(seed=3, time_scale=0.002, max_side=64, fps=4)) as client:
        run = client.sweep(prompt=[f"a fox {i}" for i in range(12)]).start(max_concurrency=12).wait(timeout=120)
    assert run.counts()["completed"] == 12
    assert seen and all(name.startswith("sora_nb-worker-simulator") for name in seen), seen
    assert len(seen) <= _store.IN_PROCESS_THREADS < _store.SERVER_THREADS, seen
    served = create_app(SimulatorConfig(seed=3))
    assert served.simulator.worker_threads == _store.SERVER_THREADS  # type: ignore[attr-defined]
