"""Characters (cameos): made from a finished job or a clip, remembered, used in generates and sweeps, drawn
by the simulator, and every mistake refused before anything is sent (requests counted at the server)."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from support import FAST, character_clip, wait_for

import sora_nb
from sora_nb import ContractClient
from sora_nb.simulator import SimulatorConfig, SimulatorTransport, render_video
from sora_nb.simulator._render import cameo_box, output_dimensions

KEY = "sk-characters-" + "Q" * 24


class Counting(httpx.AsyncBaseTransport):
    """The simulator's transport, counting every request that reaches the server."""

    def __init__(self, inner: SimulatorTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def server() -> Counting:
    return Counting(SimulatorTransport(SimulatorConfig(seed=5, time_scale=FAST, max_side=160, fps=6)))


@pytest.fixture
def client(tmp_path: Path, server: Counting) -> Iterator[sora_nb.Client]:
    with sora_nb.connect("openai-compatible", base_url="http://simulator.local/v1", api_key=KEY,
                         transport=server, run_root=tmp_path / "runs") as client:
        yield client


def frame_at(path: str | Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(frame.to_image().convert("RGB"), dtype=np.float32)
    raise AssertionError(f"{path} has no frame {index}")


def made_character(client: sora_nb.Client, name: str = "Ada") -> tuple[sora_nb.Job, sora_nb.Character]:
    job = client.generate("a woman with a red umbrella", size="1280x720", seconds="8").wait(timeout=120)
    return job, client.create_character(job, name, start=2.0)


@pytest.mark.slow
def test_a_character_from_a_finished_job_in_a_with_and_without_sweep(client: sora_nb.Client, server: Counting,
                                                                      tmp_path: Path) -> None:
    _, ada = made_character(client)
    assert ada.id and ada.id.startswith("char_") and ada.name == "Ada"
    assert ada.poster_path and Path(ada.poster_path).is_file()
    # What was uploaded: a 4 s cut from 2 s in, at the size the job asked for (the simulator's file is smaller).
    upload = next(r for r in server.requests if r.url.path.endswith("/videos/characters"))
    assert b'name="name"' in upload.content and b"Ada" in upload.content
    kept = Path(ada.poster_path).with_suffix(".mp4")
    with av.open(str(kept)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert abs(container.duration / 1e6 - 4.0) < 0.3

    run = client.sweep(prompt=["Ada walks through the rain", "Ada dances on a rooftop"], characters=[None, ada],
                       size="1280x720").start()
    run.wait(timeout=180)
    df = run.to_dataframe()
    assert df["status"].tolist() == ["completed"] * 4
    assert df["character"].isna().tolist() == [True, False, True, False]  # an axis: None for no character
    assert set(df["character"].dropna()) == {"Ada"}
    assert df["characters"].tolist() == ["", "Ada", "", "Ada"]
    assert "characters" in [name for name, _, _ in sora_nb.COLUMNS]
    # Read back from the ledger alone (JSON on disk), the specs and the column are the same.
    assert sora_nb.load_run(run.run_dir)["characters"].tolist() == ["", "Ada", "", "Ada"]
    from sora_nb._ledger import Ledger

    with Ledger.open(run.run_dir, readonly=True) as ledger:
        assert [r.spec for r in ledger.jobs()] == [j.spec for j in run.jobs]  # characters included, as tuples

    # The request bodies: the ids went with the two "with" creates and with no other.
    creates = [json.loads(r.content) for r in server.requests if r.method == "POST" and r.url.path == "/v1/videos"]
    sent = [(body["prompt"], body.get("characters")) for body in creates if body["prompt"].startswith("Ada")]
    assert sorted(sent, key=str) == sorted([
        ("Ada walks through the rain", None), ("Ada walks through the rain", [{"id": ada.id}]),
        ("Ada dances on a rooftop", None), ("Ada dances on a rooftop", [{"id": ada.id}]),
    ], key=str)
    audited = [e["characters"] for e in server.inner.audit() if e["prompt"].startswith("Ada")]
    assert sorted(audited) == [[], [], [ada.id], [ada.id]]

    # The videos show the character: its poster where the simulator draws cameos, only in the "with" ones.
    width, height = output_dimensions("1280x720", 160)
    left, top, right, bottom = cameo_box(width, height, 0)
    with Image.open(ada.poster_path) as poster:
        expected = np.asarray(poster.convert("RGB").resize((right - left, bottom - top)), dtype=np.float32)
    for row in df.itertuples():
        region = frame_at(row.video_path, 12)[top:bottom, left:right]
        error = float(np.abs(region - expected).mean())
        if row.characters == "Ada":
            assert error < 20, (row.prompt, error)  # H.264 at crf 28 blurs it a little
        else:
            assert error > 40, (row.prompt, error)


@pytest.mark.slow
def test_refusals_name_the_fix_and_send_nothing(client: sora_nb.Client, server: Counting, tmp_path: Path) -> None:
    job, ada = made_character(client)
    bo = sora_nb.Character(id="char_bo", name="Bo", created_at=0)
    cy = sora_nb.Character(id="char_cy", name="Cy", created_at=0)
    ten_seconds = render_video(tmp_path, prompt="a long take", seconds=10, size="1280x720", max_side=64, fps=4)
    sent = len(server.requests)

    with pytest.raises(sora_nb.ValidationError, match=r"3 characters given .*at most 2.* Fix: keep 2") as info:
        client.generate("Ada, Bo and Cy share a taxi", characters=[ada, bo, cy])
    assert info.value.field == "characters"
    with pytest.raises(sora_nb.ValidationError, match=r"character 'Ada' is not named in the prompt.*Fix: write 'Ada'"):
        client.generate("a walk in the rain", characters=[ada])
    with pytest.raises(sora_nb.ValidationError, match=r"extension.*Fix: drop characters="):
        job.extend("Ada waves goodbye", characters=[ada])
    with pytest.raises(sora_nb.ValidationError, match=r"10\.00 s long\. Allowed: 2 to 4 s\. Fix: let client"):
        client.create_character(ten_seconds, "Ada", trim=False)
    with pytest.raises(sora_nb.ValidationError, match=r"10\.00 s long"):  # the contract client itself, too
        client.call(ContractClient.create_character, ten_seconds, "Ada")
    with pytest.raises(sora_nb.ValidationError, match=r"name is empty"):
        client.create_character(job, " ")
    assert len(server.requests) == sent  # not one request reached the server

    # The same 10 s clip, trimmed (the default), is taken: a 4 s cut from start=.
    long_clip = render_video(tmp_path / "big", prompt="a long take", seconds=10, size="1280x720", max_side=1280,
                             fps=4)
    made = client.create_character(long_clip, "Dee", start=5.0)
    assert made.name == "Dee"


@pytest.mark.slow
def test_characters_are_remembered_across_sessions_and_hold_no_key(tmp_path: Path) -> None:
    config = SimulatorConfig(seed=9, time_scale=FAST, max_side=96, fps=4, state_dir=str(tmp_path / "sim"))
    clip = render_video(tmp_path, prompt="a face", seconds=3, size="720x1280", max_side=1280, fps=4)
    options = dict(base_url="http://simulator.local/v1", api_key=KEY, run_root=tmp_path / "runs")
    with sora_nb.connect("openai-compatible", transport=SimulatorTransport(config), **options) as first:
        ada = first.create_character(clip, "Ada")
    with sora_nb.connect("openai-compatible", transport=SimulatorTransport(config), **options) as second:
        assert [(c.id, c.name) for c in second.characters()] == [(ada.id, "Ada")]
        assert second.characters()[0].poster_path == ada.poster_path
        assert second.get_character(str(ada.id)).name == "Ada"
        job = second.generate("Ada looks at the camera", characters=[str(ada.id)]).wait(timeout=120)
        assert job.spec.characters == ((ada.id, "Ada"),)
    registry = tmp_path / "runs" / "characters"
    assert sorted(p.name for p in registry.iterdir() if not p.name.startswith(".")) == sorted(
        ["characters.json", "characters.lock", f"{ada.id}.mp4", f"{ada.id}.png"])
    for path in registry.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_profiles_without_characters_disable_them_with_the_reason(tmp_path: Path) -> None:
    assert sora_nb.PROFILES["simulator"].capabilities.supports_characters
    assert sora_nb.PROFILES["openai-compatible"].capabilities.supports_characters
    assert not sora_nb.PROFILES["xai"].capabilities.supports_characters
    ada = sora_nb.Character(id="char_ada", name="Ada", created_at=0)
    with sora_nb.connect("xai", simulator=True, run_root=tmp_path) as client:
        with pytest.raises(sora_nb.UnsupportedOperationError, match=r"profile 'xai' has no characters.*Fix:"):
            client.generate("Ada surfs", characters=[ada])
        with pytest.raises(sora_nb.UnsupportedOperationError, match="has no characters"):
            client.create_character(tmp_path / "clip.mp4", "Ada")
        with pytest.raises(sora_nb.UnsupportedOperationError, match="has no characters"):
            client.sweep(prompt="Ada surfs", characters=[None, ada])


def test_sweep_templates_say_the_character_and_invalid_casts_are_listed(client: sora_nb.Client) -> None:
    ada = sora_nb.Character(id="char_ada", name="Ada", created_at=0)
    bo = sora_nb.Character(id="char_bo", name="Bo", created_at=0)
    sweep = client.sweep(template="{character} rides a {animal}", variables={"animal": ["horse", "camel"]},
                         characters=[None, ada, [ada, bo]])
    assert [job.prompt for job in sweep.jobs] == [
        "someone rides a horse", "Ada rides a horse", "Ada and Bo rides a horse",
        "someone rides a camel", "Ada rides a camel", "Ada and Bo rides a camel",
    ]
    assert [job.characters for job in sweep.jobs[:3]] == [(), (("char_ada", "Ada"),),
                                                          (("char_ada", "Ada"), ("char_bo", "Bo"))]
    assert sweep.plan.axes == ("prompt", "animal", "model", "size", "seconds", "style", "character", "repeat")
    # A prompt that does not name the character is set aside with the reason, the rest of the grid kept.
    plain = client.sweep(prompt=["Ada surfs", "a cat surfs"], characters=[None, ada])
    assert [(j.prompt, j.characters) for j in plain.jobs] == [
        ("Ada surfs", ()), ("Ada surfs", (("char_ada", "Ada"),)), ("a cat surfs", ())]
    assert [(c.field, c.axes["prompt"]) for c in plain.plan.invalid] == [("characters", "a cat surfs")]
    with pytest.raises(ValueError, match=r"uses \{character\} but no characters"):
        client.sweep(template="{character} surfs")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "Ada Bo Cy", "characters": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}, "characters",
         "invalid_value"),
        ({"prompt": "Ada surfs", "characters": [{"id": "char_missing"}]}, "characters[0].id", "character_not_found"),
        ({"prompt": "Ada surfs", "characters": "char_1"}, "characters", "invalid_type"),
    ],
)
async def test_the_simulator_refuses_bad_characters_with_the_real_envelope(body: dict[str, object], param: str,
                                                                           code: str) -> None:
    async with httpx.AsyncClient(transport=SimulatorTransport(SimulatorConfig(time_scale=FAST)),
                                 base_url="http://simulator.local/v1",
                                 headers={"Authorization": f"Bearer {KEY}"}) as http:
        answer = await http.post("/videos", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param and answer.json()["error"]["code"] == code
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.anyio
async def test_the_simulator_checks_clips_names_in_prompts_and_extensions(tmp_path: Path) -> None:
    transport = SimulatorTransport(SimulatorConfig(time_scale=FAST, max_side=64, fps=4))
    good = render_video(tmp_path / "good", prompt="a face", seconds=3, size="1280x720", max_side=1280, fps=4)
    small = render_video(tmp_path / "small", prompt="a face", seconds=3, size="1280x720", max_side=640, fps=4)
    long = render_video(tmp_path / "long", prompt="a face", seconds=10, size="1280x720", max_side=64, fps=4)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator.local/v1",
                                 headers={"Authorization": f"Bearer {KEY}"}) as http:
        async def upload(path: Path) -> httpx.Response:
            return await http.post("/videos/characters", data={"name": "Ada"},
                                   files={"video": ("c.mp4", path.read_bytes(), "video/mp4")})

        for path, words in ((long, "2 to 4 seconds"), (small, "720p to 1080p")):
            refused = await upload(path)
            assert refused.status_code == 400 and words in refused.json()["error"]["message"]
        made = (await upload(good)).json()
        unnamed = await http.post("/videos", json={"prompt": "someone surfs", "characters": [{"id": made["id"]}]})
        assert unnamed.status_code == 400 and unnamed.json()["error"]["code"] == "character_not_in_prompt"
        # Multipart carries the list as a JSON field, as the client sends it when a file is attached.
        ok = await http.post("/videos", files={"prompt": (None, "Ada surfs"),
                                               "characters": (None, json.dumps([{"id": made["id"]}]))})
        assert ok.status_code == 200, ok.text
        extension = await http.post("/videos/extensions", json={
            "video": {"id": ok.json()["id"]}, "prompt": "Ada waves", "seconds": "4",
            "characters": [{"id": made["id"]}]})
        assert extension.status_code == 400 and extension.json()["error"]["param"] == "characters"
    assert [e["characters"] for e in transport.audit()] == [[made["id"]]]


@pytest.mark.slow
def test_the_widgets_make_pick_and_sweep_characters(client: sora_nb.Client, server: Counting) -> None:
    box = sora_nb.ui.prompt(client)
    assert box.character_picker.disabled and "no characters yet" in box.character_picker.tooltip
    box.prompt.value = "a woman with a red umbrella"
    box.size.value, box.seconds.value = "1280x720", "8"
    box.generate_button.click()
    card = box.cards.children[0]
    wait_for(lambda: card.job.done and not card.character_button.disabled, what="Make character enabled")
    card.character_button.click()  # no name yet: refused in the card, nothing sent
    assert "Name the character" in card.error.value
    card.character_name.value = "Ada"
    card.character_range.value = (1.0, 4.5)
    card.character_button.click()
    wait_for(lambda: "char_" in card.character_status.value or card.error.value, timeout=120, what="the character")
    assert "char_" in card.character_status.value, card.error.value
    ada = client.characters()[0]
    upload = next(r for r in server.requests if r.url.path.endswith("/videos/characters"))
    assert b"Ada" in upload.content
    assert not box.character_picker.disabled  # the card told the prompt box
    box.prompt.value = "walks through the rain"
    box.character_picker.value = ada.id
    assert box.prompt.value == "walks through the rain Ada" and [c.id for c in box.cast] == [ada.id]
    assert "Ada" in box.cast_view.value
    box.generate_button.click()
    assert box.jobs[-1].spec.characters == ((ada.id, "Ada"),)

    builder = sora_nb.ui.sweep(client, prompts=["Ada surfs", "Ada skis"])
    builder.characters.value = ("", ada.id)
    assert [job.characters for job in builder.plan().jobs] == [(), ((ada.id, "Ada"),)] * 2
    assert "4 jobs" in builder.summary.value
    for widget in (builder, box):
        widget.close()


@pytest.mark.slow
def test_the_widgets_say_why_a_server_has_no_characters(tmp_path: Path) -> None:
    with sora_nb.connect("xai", simulator=True, run_root=tmp_path) as client:
        box, builder = sora_nb.ui.prompt(client), sora_nb.ui.sweep(client)
        assert box.character_picker.disabled and "'xai' server has no characters" in box.character_picker.tooltip
        assert "has no characters" in box.cast_view.value
        assert builder.characters.disabled and "has no characters" in builder.characters.tooltip
        card = sora_nb.ui.JobCard(client.generate("a corgi surfing"), client=client)
        card.job.wait(timeout=60)
        wait_for(lambda: "cannot make" in card.character_button.tooltip, what="the reason")
        assert card.character_button.disabled
        for widget in (card, builder, box):
            widget.close()


def test_a_hostile_servers_character_id_never_names_a_file(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(character_clip(tmp_path))
    answers = iter([{"id": "../../escape", "name": "Ada", "created_at": 1}, {"id": "char_ok", "name": None}])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    with sora_nb.connect("openai-compatible", base_url="http://hostile.local/v1", api_key=KEY,
                         transport=httpx.MockTransport(handler), run_root=tmp_path / "runs") as client:
        for _ in range(2):
            with pytest.raises(sora_nb.UnexpectedResponseError, match=r"not safe to use.*It was not stored"):
                client.create_character(clip, "Ada")
        assert client.characters() == []
    assert not (tmp_path / "escape").exists()
    assert [p.name for p in (tmp_path / "runs" / "characters").iterdir() if p.suffix in (".mp4", ".png")] == []


def test_the_registry_keeps_every_writer_and_survives_a_failed_write(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from sora_nb._characters import CharacterRegistry

    def registry() -> CharacterRegistry:
        return CharacterRegistry(tmp_path, server="http://simulator.local/v1/")

    # Twenty writers at once, each with its own registry object (as two notebooks would be): none is lost.
    threads = [threading.Thread(target=lambda i=i: registry().add(
        sora_nb.Character(id=f"char_{i}", name=f"N{i}", created_at=i))) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.id or "" for c in registry().all()) == sorted(f"char_{i}" for i in range(20))
    # A write that fails (a full disk at the rename) leaves the old list whole and no temporary file.
    before = registry().path.read_bytes()

    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sora_nb._characters.os.replace", full)
    with pytest.raises(OSError, match="No space"):
        registry().add(sora_nb.Character(id="char_late", name="Late", created_at=0))
    assert registry().path.read_bytes() == before
    assert [p.name for p in registry().directory.iterdir() if p.suffix == ".tmp"] == []
    # Another server's characters are not this one's.
    assert CharacterRegistry(tmp_path, server="http://elsewhere.local/v1/").all() == []


def clip_with_sound(path: Path, seconds: int = 6) -> Path:
    """A 1280x720 clip with a 440 Hz tone, so that a cut can be checked for its sound."""
    from fractions import Fraction

    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=4)
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        video.time_base = Fraction(1, 4)
        audio = out.add_stream("aac", rate=48000, layout="mono")
        for index in range(seconds * 4):
            frame = av.VideoFrame.from_ndarray(np.full((720, 1280, 3), index * 9 % 255, np.uint8), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(seconds * 48000) / 48000
        tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for offset in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, offset:offset + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, offset
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def test_a_cut_keeps_the_sound_of_the_clip(tmp_path: Path) -> None:
    from sora_nb._clip import cut_clip, probe_clip

    source = clip_with_sound(tmp_path / "talking.mp4")
    cut = cut_clip(source, tmp_path / "cut.mp4", start=1.0, seconds=4.0)
    assert probe_clip(cut)[:2] == (1280, 720) and abs(probe_clip(cut)[2] - 4.0) < 0.3
    with av.open(str(cut)) as container:
        assert container.streams.audio, "the cut lost the sound"
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert 3.5 * 48000 < len(samples) < 4.5 * 48000
    assert float(np.sqrt(np.mean(samples ** 2))) > 0.2  # the tone (RMS 0.35), not silence


def test_a_sweep_file_names_characters_by_id(client: sora_nb.Client, tmp_path: Path) -> None:
    from sora_nb._characters import CharacterRegistry

    CharacterRegistry(client.run_root, server=client.base_url).add(
        sora_nb.Character(id="char_ada", name="Ada", created_at=0))
    grid = tmp_path / "grid.yaml"
    grid.write_text('prompt: ["Ada surfs", "Ada skis"]\ncharacters: [null, char_ada]\n')
    spec = sora_nb.load_sweep_file(grid)
    spec.pop("run")
    sweep = client.sweep(**spec)
    assert [(j.prompt, j.characters) for j in sweep.jobs] == [
        ("Ada surfs", ()), ("Ada surfs", (("char_ada", "Ada"),)),
        ("Ada skis", ()), ("Ada skis", (("char_ada", "Ada"),)),
    ]
    grid.write_text('prompt: "Ada surfs"\ncharacters: [null, char_nobody]\n')
    spec = sora_nb.load_sweep_file(grid)
    spec.pop("run")
    with pytest.raises(sora_nb.ValidationError, match=r"'char_nobody' is not a character of this server.*Ada"):
        client.sweep(**spec)


def _character_creates(server: Counting) -> list[httpx.Request]:
    return [r for r in server.requests if r.method == "POST" and r.url.path.endswith("/videos/characters")]


@pytest.mark.parametrize("failing", ["shutil.copyfile", "os.replace"], ids=["keeping-the-clip", "the-registry"])
def test_a_full_disk_after_the_upload_names_the_character_the_server_made(
    client: sora_nb.Client, server: Counting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Red team: the server made (and billed) the character, then the disk fills while the clip or the registry
    is written. The contract has no list of characters, so an error without the id lost it for good (before: a
    bare ``OSError: No space left on device``, no id); the error names it and how to record it again."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(character_clip(tmp_path))

    module, name = failing.split(".")
    real = getattr(importlib.import_module(module), name)

    def full(src: str, dest: str) -> object:
        # The client's disk alone is full: os.replace is the whole process's, and the in-process simulator
        # stores the clip's poster with it too (failing that would be a server fault, another test).
        if Path(os.fspath(dest)).is_relative_to(client.run_root):
            raise OSError(28, "No space left on device")
        return real(src, dest)

    monkeypatch.setattr(f"sora_nb._characters.{failing}", full)
    with pytest.raises(sora_nb.StorageError) as raised:
        client.create_character(clip, "Ada")
    assert len(_character_creates(server)) == 1
    (character_id,) = server.inner.state._characters  # what the server made
    message = str(raised.value)
    assert "No space left on device" in message and f"get_character({character_id!r})" in message
    monkeypatch.undo()
    assert client.characters() == []
    assert client.get_character(character_id).name == "Ada"  # recorded again, nothing made again
    assert [c.id for c in client.characters()] == [character_id] and len(_character_creates(server)) == 1


def test_a_character_name_that_looks_like_a_key_is_refused_before_the_upload(
    client: sora_nb.Client, server: Counting, tmp_path: Path
) -> None:
    """Red team: the registry refuses to store a key-shaped name, but only after the server made (and billed)
    the character, which was then lost (before: 1 create at the server and a ValueError). Refused first now."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(character_clip(tmp_path))
    with pytest.raises(sora_nb.ValidationError, match="looks like an API key") as raised:
        client.create_character(clip, KEY)
    assert KEY not in str(raised.value)
    assert _character_creates(server) == [] and client.characters() == []
