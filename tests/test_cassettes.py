"""The contract client against recorded exchanges (pytest-vcr cassettes in ``cassettes/contract/``).

The cassettes were recorded from real HTTP exchanges with ``sora-nb simulator`` served on a loopback
port (``SORA_NB_RECORD=1 python -m pytest tests/test_cassettes.py`` re-records them; it starts the
simulator itself). In CI they are replayed with record mode ``none``: a request that is not in the
cassette is an error, never a live call. Authorization headers and any key-like text in bodies are
scrubbed before anything is written, and a test below fails if any cassette holds a key-like string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cassette_support import CASSETTES, RECORDING, annotating_persister, vcr_options
from PIL import Image
from support import write_image

import sora_nb
from sora_nb import ContractClient, RetryPolicy
from sora_nb._redact import redact

pytestmark = pytest.mark.anyio

PORT = 8765  # recorded URLs carry the port: replay needs no server, but the same base URL
BASE_URL = f"http://127.0.0.1:{PORT}/v1"
KEY = "sk-record-" + "K" * 24  # the key used while recording; it must never reach a cassette

HEADER = (
    f"# Recorded from the sora_nb simulator (`sora-nb simulator --port {PORT} --seed 21 --time-scale 0.002\n"
    "# --max-side 64 --fps 4`) over its real HTTP interface on loopback, with sora_nb's ContractClient.\n"
    "# Not recorded from OpenAI's service (shut down on 2026-09-24). Secrets scrubbed before writing.\n"
    "# Re-record: SORA_NB_RECORD=1 python -m pytest tests/test_cassettes.py\n"
)

KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_-]{12,}|Bearer [A-Za-z0-9._-]{20,}|api[-_]key: *[A-Za-z0-9]{16,}")


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return vcr_options(lambda text: redact(text, KEY))


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES / "contract")


@pytest.fixture(scope="module")
def vcr(vcr: Any) -> Any:
    vcr.register_persister(annotating_persister(lambda _: HEADER))
    return vcr


@pytest.fixture(scope="module")
def served() -> Iterator[None]:
    """While recording, the simulator on the fixed loopback port; while replaying, nothing at all."""
    if not RECORDING:
        yield
        return
    from sora_nb.simulator import SimulatorConfig, start_server

    config = SimulatorConfig(seed=21, time_scale=0.002, max_side=64, fps=4)
    with start_server(config, port=PORT):
        yield


async def no_sleep(_: float) -> None:
    """Replays have no server time to wait for; recordings wait a little for real."""
    if RECORDING:
        import asyncio

        await asyncio.sleep(0.05)


def api() -> ContractClient:
    return ContractClient(base_url=BASE_URL, api_key=KEY, sleep=no_sleep,
                          retry=RetryPolicy(max_retries=2, jitter=0.0))


async def wait_done(client: ContractClient, video_id: str) -> sora_nb.Video:
    # Bounded by the recorded exchanges: the loop depends only on response content, not on time.
    for _ in range(400):
        video = await client.retrieve(video_id)
        if video.done:
            return video
        await no_sleep(0)
    raise AssertionError("the job did not finish")


@pytest.mark.vcr
async def test_full_lifecycle(served: None, tmp_path: Path) -> None:
    async with api() as client:
        video = await client.create(prompt="a lighthouse at dusk", model="sora-2", size="1280x720", seconds="4")
        assert video.status == "queued" and video.seconds == "4"
        done = await wait_done(client, video.id)
        assert done.status == "completed" and done.progress == 100
        mp4 = await client.download(video.id, tmp_path / "v.mp4")
        webp = await client.download(video.id, tmp_path / "t.webp", variant="thumbnail")
        jpeg = await client.download(video.id, tmp_path / "s.jpg", variant="spritesheet")
        assert mp4.read_bytes()[4:8] == b"ftyp"
        with Image.open(webp) as thumb, Image.open(jpeg) as sheet:
            assert (thumb.format, sheet.format) == ("WEBP", "JPEG")
        ids = [v.id async for v in client.iter_videos(page_size=10)]
        assert video.id in ids
        deleted = await client.delete(video.id)
        assert deleted.deleted and deleted.id == video.id
        with pytest.raises(sora_nb.NotFoundError, match="HTTP 404"):
            await client.retrieve(video.id)


@pytest.mark.vcr
async def test_multipart_create_with_reference_image(served: None, tmp_path: Path) -> None:
    ref = write_image(tmp_path / "ref.png", (720, 1280), color=(200, 80, 40))
    async with api() as client:
        video = await client.create(prompt="the same scene, animated", model="sora-2", size="720x1280",
                                    seconds="4", input_reference=ref)
        assert video.status == "queued" and video.size == "720x1280"


@pytest.mark.vcr
async def test_server_side_validation_errors(served: None) -> None:
    async with ContractClient(base_url=BASE_URL, api_key=KEY, validate=False, sleep=no_sleep,
                              seconds_as_int=True) as client:
        with pytest.raises(sora_nb.BadRequestError) as info:
            await client.create(prompt="a cat", model="sora-2", seconds="4")
        assert info.value.code == "invalid_type" and info.value.param == "seconds"
    async with ContractClient(base_url=BASE_URL, api_key=KEY, validate=False, sleep=no_sleep) as client:
        with pytest.raises(sora_nb.BadRequestError) as info:
            await client.create(prompt="a cat", model="sora-2", size="1792x1024")
        assert info.value.param == "size"
        with pytest.raises(sora_nb.NotFoundError):
            await client.retrieve("video_does_not_exist")


@pytest.mark.vcr
async def test_remix_and_extension(served: None) -> None:
    async with api() as client:
        source = await client.create(prompt="a paper boat", seconds="4")
        await wait_done(client, source.id)
        remix = await client.remix(source.id, "a paper boat at night")
        assert remix.remixed_from_video_id == source.id
        extended = await client.extend(source.id, "the boat sails away", seconds="4")
        assert extended.seconds == "8"  # the stitched total


def _clip_placeholder(request: Any) -> Any:
    """The upload of a character's clip is kept as a note of its size, not its bytes (hundreds of KB of
    H.264 in a YAML file); replay matches requests by method and URL, so it needs no more."""
    recorded = isinstance(request.body, bytes) and request.body.startswith(b"<multipart")  # loaded from a cassette
    if request.path.endswith("/videos/characters") and isinstance(request.body, bytes) and not recorded:
        name = re.search(rb'name="name"\r\n\r\n([^\r]*)', request.body)
        request.body = (f"<multipart: a {len(request.body)}-byte video/mp4 clip (video) and "
                        f"name={name.group(1).decode() if name else '?'}; bytes not kept>")
    return request


_SCRUB = vcr_options(lambda text: redact(text, KEY))["before_record_request"]


@pytest.mark.vcr(before_record_request=lambda request: _clip_placeholder(_SCRUB(request)))
@pytest.mark.slow
def test_a_character_in_a_with_and_without_sweep(served: None, tmp_path: Path, vcr_cassette: Any) -> None:
    """A character made from a finished job, used in 2 prompts x with/without: the recorded bodies carry its id."""
    policy = sora_nb.PollPolicy(floor=0.01, ceiling=0.05, first=0.01)
    with sora_nb.connect("openai-compatible", base_url=BASE_URL, api_key=KEY, run_root=tmp_path, max_concurrency=1,
                         poll_policy=policy, retry=RetryPolicy(max_retries=0)) as client:
        job = client.generate("a woman with a red umbrella", size="1280x720", seconds="8").wait(timeout=120)
        ada = client.create_character(job, "Ada", start=2.0)
        run = client.sweep(prompt=["Ada walks through the rain", "Ada dances on a rooftop"], characters=[None, ada],
                           size="1280x720").start()
        df = run.wait(timeout=300).to_dataframe()
    assert df["status"].tolist() == ["completed"] * 4 and df["characters"].tolist() == ["", "Ada", "", "Ada"]
    # (Re-recording: delete the cassette first; record mode "all" keeps its old interactions in this list.)
    made = [r for r in vcr_cassette.requests if r.path.endswith("/videos/characters")]
    assert len(made) == 1 and "name=Ada" in str(made[0].body)
    bodies = [json.loads(r.body) for r in vcr_cassette.requests if r.method == "POST" and r.path.endswith("/videos")]
    assert [(b["prompt"], b.get("characters")) for b in bodies] == [
        ("a woman with a red umbrella", None),
        ("Ada walks through the rain", None), ("Ada walks through the rain", [{"id": ada.id}]),
        ("Ada dances on a rooftop", None), ("Ada dances on a rooftop", [{"id": ada.id}]),
    ]


def test_no_cassette_holds_a_key() -> None:
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert files, "the contract cassettes are missing: record them with SORA_NB_RECORD=1"
    for path in files:
        text = path.read_text()
        assert KEY not in text, path
        assert not KEY_LIKE.search(text), f"{path} holds a key-like string"


def test_every_cassette_says_where_it_came_from() -> None:
    for path in sorted((CASSETTES / "contract").glob("*.yaml")):
        assert path.read_text().startswith("# Recorded from the sora_nb simulator"), path


def test_replay_cannot_reach_the_network() -> None:
    """Record mode ``none`` turns an unrecorded request into an error, not a live call."""
    import vcr as vcrpy
    from vcr.errors import CannotOverwriteExistingCassetteException

    cassette = str(CASSETTES / "contract" / "test_full_lifecycle.yaml")
    with vcrpy.use_cassette(cassette, record_mode="none"), pytest.raises(CannotOverwriteExistingCassetteException):
        httpx.get("http://127.0.0.1:9/never-recorded")
