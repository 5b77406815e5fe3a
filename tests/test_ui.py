"""The widgets without a browser: built on the in-process simulator, driven through ``.value`` and
``.click()``, checked on the engine calls they make and the state they would send to a front end.

Outside a kernel ipywidgets talks to a ``DummyComm``; the ``sent`` fixture records every message a
widget would send to the browser (its ``publish_msg``), which is how coalescing and the absence of
the API key are measured.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import ipywidgets as widgets
import pytest
from PIL import Image
from support import Sent, image_bytes, wait_for

import sora_nb
from sora_nb import ui
from sora_nb._jobs import Job
from sora_nb._sweep import Sweep
from sora_nb.simulator import SimulatorConfig, SimulatorTransport
from sora_nb.ui._sync import Coalescer, walk

# ---------------------------------------------------------------------------------------- helpers


def html_of(output: widgets.Output) -> str:
    return "".join(item["data"].get("text/html", "") for item in output.outputs)


def tree_html(top: Any) -> str:
    """All the HTML that a widget and everything below it show."""
    return "".join(html_of(w) if isinstance(w, widgets.Output) else w.value
                   for w in walk(top) if isinstance(w, (widgets.Output, widgets.HTML)))


def assert_no_file_urls(top: Any) -> None:
    """Nothing in the widget tree points at a file by URL (none would load in VS Code)."""
    text = tree_html(top)
    assert "runs/" not in text and "sora_runs/" not in text and '.mp4"' not in text
    for url in re.findall(r'(?:src|href|poster)="([^"]*)"', text):
        assert url.startswith("data:image/"), url


def assert_key_absent(key: str, *tops: Any) -> None:
    """The key is in no widget's repr and no state that a widget below ``tops`` would send."""
    for top in tops:
        assert key not in repr(top)
        for widget in walk(top):
            assert key not in json.dumps(widget.get_state(), default=str), widget


@pytest.fixture(autouse=True)
def _not_in_vscode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``media="auto"`` means URLs here, even when the tests run in a VS Code terminal."""
    for name in [n for n in os.environ if n.startswith("VSCODE_")]:
        monkeypatch.delenv(name)


def loop_thread_name(client: sora_nb.Client) -> str:
    return str(client._runtime.call_and_wait(lambda: threading.current_thread().name))


# ---------------------------------------------------------------------------------------- import and pure parts


def test_missing_ipywidgets_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "sora_nb.ui" or n.startswith("sora_nb.ui.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r'pip install "sora-nb\[notebook\]"'):
        import sora_nb.ui  # noqa: F401


def test_entry_points_are_public() -> None:
    assert ui.__all__[:2] == ["prompt", "sweep"]
    for name in ("gallery", "compare", "table", "PromptBox", "JobCard", "SweepBuilder", "Gallery", "CompareGrid",
                 "ResultsTable"):
        assert hasattr(ui, name), name
    assert sora_nb.ui is ui


def test_widgets_reach_the_engine_through_public_accessors(client: sora_nb.Client) -> None:
    job = client.generate("a kite")
    assert job._runtime is client._runtime and job.profile is client.profile
    assert job.run._runtime is client._runtime and job.run.profile is client.profile
    sources = "".join(path.read_text() for path in Path(ui.__file__).parent.glob("*.py"))
    assert "_runner" not in sources


# ---------------------------------------------------------------------------------------- PromptBox and JobCard


def test_prompt_box_options_come_from_the_profile(client: sora_nb.Client, closing: list[Any]) -> None:
    box = ui.prompt(client)
    closing.append(box)
    assert list(box.model.options) == list(client.profile.capabilities.model_names())
    assert box.size.options == (("Portrait 720×1280", "720x1280"), ("Landscape 1280×720", "1280x720"))
    assert [v for _, v in box.seconds.options] == ["4", "8", "12"]
    assert set(sora_nb.STYLES) <= set(box.style.options)
    assert "est. $0.40" in box.cost.value
    box.model.value = "sora-2-pro"
    assert len(box.size.options) == 4 and "1792x1024" in [v for _, v in box.size.options]
    box.size.value = "1792x1024"
    box.seconds.value = "8"
    assert "est. $4.00" in box.cost.value
    box.style.value = "noir"
    assert "film noir" in box.style_hint.value


def test_a_model_the_server_does_not_offer_is_refused_naming_its_models(client: sora_nb.Client) -> None:
    with pytest.raises(ValueError, match=r"model='sora-3'.*Allowed: sora-2, sora-2-pro\. Fix: "):
        ui.prompt(client, model="sora-3")  # not ipywidgets' "Invalid selection: value not found"


def test_generate_starts_a_job_and_its_card_follows_it(
    client: sora_nb.Client, here: Path, closing: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    real = client.generate

    def spy(prompt: str, **kwargs: Any) -> Job:
        calls.append((prompt, kwargs))
        return real(prompt, **kwargs)

    monkeypatch.setattr(client, "generate", spy)
    box = ui.prompt(client)
    closing.append(box)
    box.prompt.value = "a corgi surfing at sunset"
    box.size.value = "1280x720"
    box.style.value = "cinematic"
    styles: list[str] = []
    box.generate_button.click()
    assert box.error.value == ""
    assert calls == [("a corgi surfing at sunset", {"model": "sora-2", "size": "1280x720", "seconds": "4",
                                                     "style": "cinematic", "input_reference": None,
                                                     "characters": []})]
    (card,) = box.cards.children
    assert isinstance(card, ui.JobCard) and card.job is box.jobs[0]
    card.bar.observe(lambda change: styles.append(change["new"]), "bar_style")
    wait_for(lambda: card.job.done, what="the job")
    wait_for(lambda: card.bar.bar_style == "success", what="the success bar")
    assert card.bar.value == 100
    assert "completed" in card.status.value and "took" in card.status.value
    assert styles[-1] == "success" and "danger" not in styles
    media = wait_for(lambda: html_of(card.media), what="the video")
    rel = card.job.video_path.relative_to(here).as_posix()
    assert f'<video src="{rel}"' in media and "thumbnails/" in media and "base64" not in media
    assert rel in card.link.value and "download=" in card.link.value
    assert not card.remix_button.disabled and not card.extend_button.disabled
    assert not card.retry_button.disabled and not card.delete_button.disabled
    assert card.cancel_button.disabled and card.cancel_button.layout.display == "none"
    assert "a corgi surfing at sunset" in card.title.value and "Landscape 1280×720" in card.title.value


def test_a_failed_job_shows_danger_and_success_never_overwrites_it(client: sora_nb.Client,
                                                                   closing: list[Any]) -> None:
    box = ui.prompt(client, prompt="a storm at sea [fail]")
    closing.append(box)
    job = box.generate()
    card = box.cards.children[0]
    wait_for(lambda: job.done and card.bar.bar_style == "danger", what="the danger bar")
    wait_for(lambda: "moderation_blocked" in card.job_error.value, what="the error message")
    assert card.remix_button.disabled and "done" in card.remix_button.tooltip
    assert not card.retry_button.disabled
    # Whatever happens to the record afterwards, the bar stays red.
    job._record.status, job._record.progress = "completed", 100
    card.refresh()
    assert card.bar.bar_style == "danger"


def test_validation_errors_are_shown_in_the_widget(client: sora_nb.Client, sim_transport: SimulatorTransport,
                                                   closing: list[Any]) -> None:
    box = ui.prompt(client)
    closing.append(box)
    box.generate_button.click()  # an empty prompt
    assert "ValidationError" in box.error.value and "prompt is empty" in box.error.value
    assert box.cards.children == () and sim_transport.audit() == []
    box.prompt.value = "now it is fine"
    box.generate_button.click()
    assert box.error.value == "" and len(box.cards.children) == 1


def test_card_actions_call_the_engine(client: sora_nb.Client, closing: list[Any]) -> None:
    box = ui.prompt(client, prompt="a paper boat")
    closing.append(box)
    job = box.generate()
    card = box.cards.children[0]
    wait_for(lambda: job.done and not card.remix_button.disabled, what="the finished card")

    card.remix_button.click()  # no follow-up prompt: the error shows, nothing is sent
    assert "Write what to change" in card.error.value and len(box.jobs) == 1

    card.follow_up.value = "at night"
    card.remix_button.click()
    card.follow_up.value = "it sails away"
    card.extend_button.click()
    card.retry_button.click()
    assert card.error.value == ""
    remix, extend, retry = box.jobs[1:]
    assert (remix.spec.kind, remix.prompt, remix.spec.parent_id) == ("remix", "at night", job.remote_id)
    assert (extend.spec.kind, extend.prompt, extend.seconds) == ("extend", "it sails away", "4")
    assert (retry.spec.kind, retry.prompt, retry.model) == ("create", "a paper boat", job.model)
    assert [c.job for c in box.cards.children[:3]] == [retry, extend, remix]  # newest first
    assert card.retry_button.disabled and f"already retried as {retry.id}" in card.retry_button.tooltip

    card.delete_button.click()
    wait_for(lambda: card.delete_button.description == "Deleted", what="the delete")

    async def retrieve(api: Any) -> Any:
        return await api.retrieve(job.remote_id)

    with pytest.raises(sora_nb.NotFoundError):
        client.call(retrieve)
    for other in (remix, extend, retry):
        other.cancel()


def test_after_delete_remix_and_extend_are_disabled_with_a_reason(client: sora_nb.Client, closing: list[Any]) -> None:
    job = client.generate("a paper boat").wait(timeout=30)
    card = ui.JobCard(job)
    closing.append(card)
    card.refresh()
    assert not card.remix_button.disabled and not card.extend_button.disabled
    card.delete_button.click()
    wait_for(lambda: card.delete_button.description == "Deleted" or card.error.value, what="the delete")
    card.refresh()  # a later redraw keeps them so
    for button in (card.remix_button, card.extend_button, card.delete_button):
        assert button.disabled and "deleted on the server" in button.tooltip, button.description
    assert not card.retry_button.disabled  # a retry sends the request again: it needs no server copy


def test_deleting_a_cancelled_job_already_gone_from_the_server_is_no_error(slow_client: sora_nb.Client,
                                                                             closing: list[Any]) -> None:
    job = slow_client.generate("a lighthouse")
    card = ui.JobCard(job)
    closing.append(card)
    wait_for(lambda: job.remote_id is not None, what="the create")
    job.cancel()  # which deletes the server's copy

    async def retrieve(api: Any) -> Any:
        return await api.retrieve(job.remote_id)

    def gone() -> bool:
        try:
            slow_client.call(retrieve)
        except sora_nb.NotFoundError:
            return True
        return False

    wait_for(gone, what="the delete that comes with the cancel")
    card.refresh()
    assert not card.delete_button.disabled  # the card cannot know it is gone
    card.delete_button.click()
    wait_for(lambda: card.delete_button.description == "Deleted" or card.error.value, what="the delete")
    assert card.error.value == "" and card.delete_button.description == "Deleted" and card.delete_button.disabled


def test_buttons_the_server_cannot_do_are_disabled_with_a_reason(client: sora_nb.Client,
                                                                 closing: list[Any]) -> None:
    frills = dict(supports_remix=False, supports_extend=False, supports_delete=False)
    client._runner.profile = replace(client.profile, name="no-frills",
                                     capabilities=replace(client.profile.capabilities, **frills))
    job = client.generate("a lighthouse")
    card = ui.JobCard(job)
    closing.append(card)
    wait_for(lambda: job.done, what="the job")
    card.refresh()
    for button, what in ((card.remix_button, "remix"), (card.extend_button, "extend"), (card.delete_button, "delete")):
        assert button.disabled and f"'no-frills' server cannot {what}" in button.tooltip
    assert not card.retry_button.disabled


def test_reference_image_is_checked_against_the_size_and_can_be_fitted(client: sora_nb.Client,
                                                                        closing: list[Any]) -> None:
    box = ui.prompt(client, prompt="a cat in the style of this photo")
    closing.append(box)
    box.size.value = "1280x720"
    data = image_bytes((640, 480))
    # As the browser sends an upload: through the widget's deserializer.
    box.upload.set_state({"value": [{"name": "photo.png", "type": "image/png", "size": len(data),
                                     "content": memoryview(data), "last_modified": 1_700_000_000_000}]})
    assert box.upload.value == ()  # the bytes do not linger in widget state
    assert "640×480 but the size is 1280×720" in box.reference_status.value
    assert box.reference is None and box.fit_button.layout.display is None
    box.generate_button.click()
    assert "does not match the size" in box.error.value and box.jobs == []

    box.fit_button.click()
    assert box.reference is not None and box.error.value == ""
    with Image.open(box.reference) as fitted:
        assert fitted.size == (1280, 720)
    assert "✓" in box.reference_status.value
    job = box.generate()
    assert job.spec.input_reference == str(box.reference.resolve())

    box.size.value = "720x1280"  # the fitted image no longer matches
    assert box.reference is None and "1280×720 but the size is 720×1280" in box.reference_status.value
    box.clear_reference.click()
    assert box.reference is None and box.reference_status.value == ""
    job.cancel()


def test_a_card_shows_its_video_only_after_its_full_bar_and_enabled_buttons(client: sora_nb.Client, here: Path,
                                                                            sent: Sent, closing: list[Any]) -> None:
    """A front end applies the kernel's messages in order: a card's video seen must mean that its bar shows the
    end and Remix is enabled (the browser tests read them once the video shows)."""
    card = ui.JobCard(client.generate("a paper boat"))
    closing.append(card)
    wait_for(lambda: html_of(card.media), what="the video")
    order = [(comm_id, data["state"]) for _at, comm_id, data in sent.messages if data.get("method") == "update"]
    video = next(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == card.media.comm.comm_id and "<video" in str(state.get("outputs")))
    green = next(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == card.bar.comm.comm_id and state.get("bar_style") == "success")
    remix = next(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == card.remix_button.comm.comm_id and state.get("disabled") is False)
    assert max(green, remix) < video, order


def test_the_cast_shows_its_chips_only_after_its_no_characters_button(client: sora_nb.Client, sent: Sent,
                                                                       closing: list[Any]) -> None:
    """A front end applies the kernel's messages in order: a character's chip seen in the cast must mean that
    "No characters" (which empties it) shows too; it followed the chip, and the browser test that looked for it
    once the chip showed could find it still hidden."""
    from sora_nb._types import Character

    box = ui.prompt(client)
    closing.append(box)
    start = len(sent.messages)
    box._set_cast([Character(id="char_1", name="Ada", created_at=0)])  # what picking Ada does, after her name
    order = [comm_id for _at, comm_id, data in sent.messages[start:] if data.get("method") == "update"]
    assert order.index(box.clear_cast.layout.comm.comm_id) < order.index(box.cast_view.comm.comm_id), order


# ---------------------------------------------------------------------------------------- threads and coalescing


def test_callbacks_from_another_thread_hand_over_to_the_loop(
    client: sora_nb.Client, closing: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_name = loop_thread_name(client)
    observed_on: list[str] = []
    scheduled_on: list[str] = []
    handed: list[str] = []
    real_observe, real_schedule, real_call = Job.observe, Coalescer._schedule, client._runtime.call

    def observe(self: Job, callback: Any) -> Any:
        observed_on.append(threading.current_thread().name)
        return real_observe(self, callback)

    def schedule(self: Coalescer) -> None:
        scheduled_on.append(threading.current_thread().name)
        real_schedule(self)

    def call(fn: Any, *args: Any) -> None:
        handed.append(threading.current_thread().name)
        real_call(fn, *args)

    monkeypatch.setattr(Job, "observe", observe)
    monkeypatch.setattr(Coalescer, "_schedule", schedule)
    monkeypatch.setattr(client._runtime, "call", call)
    box = ui.prompt(client, prompt="a fox")
    closing.append(box)

    # A click arriving on a comm-subshell thread (JupyterLab >= 4.4 with ipykernel 7.0-7.3).
    clicker = threading.Thread(target=box.generate_button.click, name="subshell-test")
    clicker.start()
    clicker.join(10)
    assert box.error.value == ""
    job = box.jobs[0]
    job.wait(timeout=30)
    card = box.cards.children[0]
    wait_for(lambda: card.bar.bar_style == "success", what="the card")
    assert "subshell-test" in handed  # the click thread only handed work over ...
    assert observed_on and set(observed_on) == {loop_name}  # ... the subscription ran on the loop
    assert scheduled_on and set(scheduled_on) == {loop_name}  # ... and so did every timer

    # A click on the loop's own thread (ipykernel 7.4 runs clicks there) works the same way.
    client._runtime.call_and_wait(box.generate_button.click)
    wait_for(lambda: len(box.jobs) == 2 and box.jobs[1].done, what="the second job")


@pytest.fixture
def slow_client(tmp_path: Path) -> Iterator[sora_nb.Client]:
    """Jobs that take a minute: they stay running while a test plays with them."""
    transport = SimulatorTransport(SimulatorConfig(seed=2, time_scale=1.0))
    with sora_nb.connect("simulator", run_root=tmp_path / "runs", transport=transport) as c:
        yield c


@pytest.fixture
def queued_client(tmp_path: Path) -> Iterator[sora_nb.Client]:
    """Jobs that wait in the queue for an hour: a test that needs them queued is not racing the queue."""
    transport = SimulatorTransport(SimulatorConfig(seed=2, time_scale=1.0, queue_s=3600.0))
    with sora_nb.connect("simulator", run_root=tmp_path / "runs", transport=transport) as c:
        yield c


def test_a_burst_of_changes_is_coalesced(slow_client: sora_nb.Client, sent: Sent, closing: list[Any]) -> None:
    client = slow_client
    job = client.generate("a slow one")
    card = ui.JobCard(job, refresh_interval=0.25)
    naive = ui.JobCard(job, refresh_interval=0)
    closing.extend([card, naive])
    card.refresh()
    comm_ids = {w.comm.comm_id for w in walk(card)}
    naive_ids = {w.comm.comm_id for w in walk(naive)}
    flushes_before, naive_before = card._coalescer.flushes, naive._coalescer.flushes

    def burst() -> None:
        for i in range(400):
            job._record.progress = i % 100
            job._changed()

    started = time.monotonic()
    client._runtime.call_and_wait(burst)
    burst_time = time.monotonic() - started
    time.sleep(0.6)
    card_updates = sent.updates(comm_ids, since=started)
    naive_updates = sent.updates(naive_ids, since=started)
    flushes = card._coalescer.flushes - flushes_before
    # At most one redraw per 0.25 s (plus the one in flight and the elapsed-time tick).
    assert flushes <= (burst_time + 0.6) / 0.25 + 2, flushes
    assert len(card_updates) <= flushes * 3, (len(card_updates), flushes)
    assert naive._coalescer.flushes - naive_before >= 400
    assert len(naive_updates) > 10 * max(1, len(card_updates))
    job.cancel()


def test_sweep_progress_sends_few_messages_for_many_jobs(client: sora_nb.Client, sent: Sent,
                                                         closing: list[Any]) -> None:
    builder = ui.sweep(client, refresh_interval=0.25)
    closing.append(builder)
    builder.prompts.value = "\n".join(f"prompt {i}" for i in range(10))
    builder.seconds.value = ("4", "8")
    builder.repeats.value = 2
    builder.budget.value = 0
    assert "40 jobs" in builder.summary.value
    started = time.monotonic()
    builder.launch_button.click()
    run = builder.run
    assert run is not None and len(run) == 40
    run.wait(timeout=60)
    progress = builder.progress
    assert progress is not None
    wait_for(lambda: progress.bar.bar_style == "success", what="the overall bar")
    elapsed = time.monotonic() - started
    updates = sent.updates({w.comm.comm_id for w in walk(progress)}, since=started)
    # Four widgets redraw at most four times a second (plus the elapsed-time tick).
    assert len(updates) <= 4 * (elapsed / 0.25 + 3), (len(updates), elapsed)
    assert "40/40 done" in progress.counts.value


# ---------------------------------------------------------------------------------------- SweepBuilder


def test_cancel_is_enabled_only_while_the_run_goes(client: sora_nb.Client, closing: list[Any]) -> None:
    builder = ui.sweep(client, prompts=["a calm lake"])
    closing.append(builder)
    assert builder.cancel_button.disabled and builder.retry_button.disabled
    run = builder.launch()
    assert not builder.cancel_button.disabled
    run.wait(timeout=60)
    wait_for(lambda: builder.cancel_button.disabled, what="Cancel disabled once the run ended")
    assert builder.retry_button.disabled  # nothing failed


def test_a_sweep_builders_buttons_are_in_their_ended_state_before_its_bar_turns_green(
        client: sora_nb.Client, sent: Sent, closing: list[Any]) -> None:
    """A front end applies the kernel's messages in order: a green bar (or "N/N done") must mean that Cancel is
    disabled and Launch enabled again. They followed the bar, so a Launch clicked as soon as the bar turned green
    met a still-disabled button (and the Voila app's test, reading Cancel then, could see it still enabled)."""
    builder = ui.sweep(client, prompts=["a calm lake"])
    closing.append(builder)
    start = len(sent.messages)
    run = builder.launch()
    run.wait(timeout=60)
    wait_for(lambda: builder.progress is not None and builder.progress.bar.bar_style == "success", what="green bar")
    wait_for(lambda: not builder.launch_button.disabled, what="Launch enabled")
    order = [(comm_id, data["state"]) for _at, comm_id, data in sent.messages[start:] if data.get("method") == "update"]
    green = next(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == builder.progress.bar.comm.comm_id and state.get("bar_style") == "success")
    done = next(i for i, (comm_id, state) in enumerate(order)
                if comm_id == builder.progress.counts.comm.comm_id and "1/1 done" in state.get("value", ""))
    # The last of each: Launch disabled then enabled again, Cancel enabled then disabled again.
    cancel = max(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == builder.cancel_button.comm.comm_id and state.get("disabled") is True)
    launch = max(i for i, (comm_id, state) in enumerate(order)
                 if comm_id == builder.launch_button.comm.comm_id and state.get("disabled") is False)
    assert max(cancel, launch) < min(green, done), order


def test_a_cancel_click_while_a_cell_blocks_the_loop_returns_at_once_and_cancels_once_it_frees(
    slow_client: sora_nb.Client, closing: list[Any]
) -> None:
    """A long synchronous cell holds the kernel's loop; meanwhile Cancel is clicked (a comm subshell thread, as
    JupyterLab >= 4.4 runs widget handlers). The click hands the cancel over and returns: it used to wait for the
    loop, freezing that thread (every later click queued behind it) for 60 s, then show a bare TimeoutError.
    Once the cell ends, the loop cancels every job of the run in one pass."""
    builder = ui.sweep(slow_client, prompts=["a calm lake", "a windy hill"])
    closing.append(builder)
    run = builder.launch()
    blocked, release = threading.Event(), threading.Event()

    def long_cell() -> None:
        blocked.set()
        release.wait(30)

    slow_client._runtime.loop.call_soon_threadsafe(long_cell)
    blocked.wait(10)
    click = threading.Thread(target=builder.cancel_button.click)
    click.start()
    click.join(2)
    returned = not click.is_alive()
    release.set()
    click.join(70)
    assert returned  # before: the click waited for the loop (60 s, then TimeoutError)
    assert builder.error.value == ""
    run.wait(timeout=10)
    assert {job.status for job in run.jobs} == {"cancelled"}


def test_a_sweep_builder_can_show_its_runs_videos(client: sora_nb.Client, here: Path, closing: list[Any]) -> None:
    """The Voila app showed a sweep's progress but its videos nowhere."""
    builder = ui.sweep(client, prompts=["a calm lake", "a windy hill"], gallery=True)
    closing.append(builder)
    run = builder.launch()
    assert builder.gallery is not None and builder.gallery.run is run
    assert builder.output.children == (builder.progress, builder.gallery)
    run.wait(timeout=60)
    wait_for(lambda: tree_html(builder.gallery).count('<img class="sora-nb-tile-poster"') == 2,
             what="the sweep's posters")


def test_sweep_builder_counts_invalid_combos_and_checks_the_budget(client: sora_nb.Client,
                                                                   closing: list[Any]) -> None:
    builder = ui.sweep(client, budget_usd=1.0)
    closing.append(builder)
    assert builder.launch_button.disabled and "prompt" in builder.summary.value  # nothing to generate yet
    builder.prompts.value = "a corgi surfing\na cat skiing"
    builder.models.value = ("sora-2", "sora-2-pro")
    builder.sizes.value = ("1280x720", "1792x1024")
    summary = builder.summary.value
    assert "6 jobs (2 invalid)" in summary and "1792x1024" in summary and "over the budget" in summary
    assert builder.launch_button.disabled and "raise the budget" in builder.launch_button.tooltip
    builder.budget.value = 100.0
    assert not builder.launch_button.disabled and "within the budget" in builder.summary.value
    assert builder.axes()["model"] == ["sora-2", "sora-2-pro"]

    builder.template.value = "a {animal} at {time}"
    builder.variables.value = "animal: corgi, cat\ntime dawn"
    assert "is not &#x27;name: value" in builder.summary.value and builder.launch_button.disabled
    builder.variables.value = "animal: corgi, cat\ntime: dawn"
    assert "6 jobs (2 invalid)" in builder.summary.value and "a corgi at dawn" not in builder.prompts.value
    assert builder.plan().jobs[0].prompt == "a corgi at dawn"


def test_sweep_builder_launches_cancels_and_retries(client: sora_nb.Client, closing: list[Any]) -> None:
    builder = ui.sweep(client, budget_usd=0)
    closing.append(builder)
    builder.retry_button.click()
    builder.prompts.value = "a calm lake\na storm [fail]"
    builder.styles.value = ("(none)", "noir")
    builder.launch_button.click()
    assert builder.error.value == ""
    run = builder.run
    assert run is not None and len(run) == 4 and run.max_concurrency == client.profile.max_concurrency
    assert {j.style for j in run.jobs} == {None, "noir"}
    run.wait(timeout=60)
    progress = builder.progress
    assert progress is not None
    wait_for(lambda: "4/4 done" in progress.counts.value, what="the counts")
    assert progress.bar.bar_style == "danger" and "2 failed" in progress.counts.value
    assert "moderation_blocked" in progress.job_list.value
    assert builder.cancel_button.disabled and not builder.retry_button.disabled  # the run ended, with failures
    builder.retry_button.click()
    assert builder.error.value == "" and len(run) == 6
    run.wait(timeout=60)
    progress.refresh()
    assert progress.bar.bar_style == "danger"  # still red: the retries failed too
    assert "2 failed" in progress.counts.value and "2 retried" in progress.counts.value
    builder.cancel_button.click()  # nothing left running: a no-op, not an error
    assert builder.error.value == ""


def test_launch_is_refused_while_the_run_goes_so_a_double_click_starts_one_run(
    slow_client: sora_nb.Client, closing: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[sora_nb.Run] = []
    real_start = Sweep.start

    def start(self: Sweep, **kwargs: Any) -> sora_nb.Run:
        started.append(real_start(self, **kwargs))
        return started[-1]

    monkeypatch.setattr(Sweep, "start", start)
    builder = ui.sweep(slow_client, prompts=["a kite", "a tram"], budget_usd=0)
    closing.append(builder)
    builder.launch_button.click()
    builder.launch_button.click()  # a double click: the second arrives before the button is disabled
    assert len(started) == 1 and builder.run is started[0]  # one run, and Cancel still reaches it
    assert "is still going" in builder.error.value
    assert builder.launch_button.disabled and "Cancel" in builder.launch_button.tooltip
    builder.prompts.value = "a kite\na tram\na boat"  # editing the axes does not enable it again
    assert builder.launch_button.disabled
    builder.cancel_button.click()
    wait_for(lambda: started[0].done and not builder.launch_button.disabled, what="Launch once the run ended")
    builder.launch_button.click()
    assert len(started) == 2 and builder.error.value == "" and len(started[1]) == 3
    started[1].cancel()


# ---------------------------------------------------------------------------------------- Gallery, grid, table


@pytest.fixture
def small_run(client: sora_nb.Client, here: Path) -> sora_nb.Run:
    run = client.sweep(prompt=["a red fox", "a lighthouse"], model=["sora-2", "sora-2-pro"], size="1280x720").start()
    return run.wait(timeout=60)


def test_gallery_of_a_run_filters_and_pages(small_run: sora_nb.Run, closing: list[Any]) -> None:
    gallery = small_run.gallery(page_size=3, columns=3)
    closing.append(gallery)
    gallery.refresh()
    text = tree_html(gallery.tiles)
    assert text.count("<figure") == 3 and "page 1 of 2" in gallery.page_label.value
    assert 'onclick="' in text and 'preload="none"' in text  # click to play; nothing loads before
    gallery.next_button.click()
    gallery.refresh()
    assert tree_html(gallery.tiles).count("<figure") == 1 and gallery.next_button.disabled
    gallery.filters["model"].value = "sora-2-pro"
    gallery.refresh()
    text = tree_html(gallery.tiles)
    assert text.count("<figure") == 2 and "sora-2-pro" in text and "page 1 of 1" in gallery.page_label.value
    gallery.status_filter.value = "completed"
    gallery.filters["prompt"].value = "a red fox"
    gallery.refresh()
    assert tree_html(gallery.tiles).count("<figure") == 1


def test_gallery_tiles_have_one_shape_the_prompt_and_one_visible_medium(client: sora_nb.Client, here: Path,
                                                                         closing: list[Any]) -> None:
    """Portrait and landscape tiles had ragged heights, captions without the prompt, and a poster whose
    inline display:block beat the video's ``hidden``: both showed, stacked, once clicked."""
    run = client.sweep(prompt=["a red fox"], size=["1280x720", "720x1280"]).start().wait(timeout=60)
    gallery = run.gallery()
    closing.append(gallery)
    gallery.refresh()
    tiles = [html_of(tile) for tile in gallery.tiles.children]
    assert len(tiles) == 2
    for text in tiles:
        # one 16:9 box (by its padding: JupyterLab's sanitizer drops aspect-ratio), the media fitted in it
        assert "padding-top:56.25%" in text and "max-width:100%" in text and "object-fit:contain" in text
        assert "a red fox" in text.split("<figcaption", 1)[1] and 'class="sora-nb-badge"' in text
        poster, video = re.search(r"<img[^>]*>", text).group(0), re.search(r"<video[^>]*>", text).group(0)
        assert "display:block" in poster and "display:none" in video and " hidden" not in video
        assert "style.display='none'" in html.unescape(poster) and ".pause()" in poster  # swaps, stops the others


def test_a_gallery_filter_that_matches_nothing_shows_nothing_and_stays_chosen(queued_client: sora_nb.Client,
                                                                                closing: list[Any]) -> None:
    run = queued_client.sweep(prompt=["a kite", "a tram"]).start()
    gallery = run.gallery(status="cancelled", model="sora-2-pro")  # no job is either, yet
    closing.append(gallery)
    gallery.refresh()
    assert gallery.visible_jobs() == [] and "No videos match." in tree_html(gallery.tiles)
    assert gallery.status_filter.value == "cancelled" and gallery.filters["model"].value == "sora-2-pro"
    gallery.filters["model"].value = "(all)"
    run.jobs[0].cancel()  # a job arrives in the status asked for
    wait_for(lambda: [j.id for j in gallery.visible_jobs()] == [run.jobs[0].id], what="the cancelled job")
    wait_for(lambda: "queued" in gallery.status_filter.options, what="the queued option")
    gallery.status_filter.value = "queued"
    gallery.refresh()
    assert gallery.visible_jobs() == [run.jobs[1]]
    run.jobs[1].cancel()  # no job is queued any more: the choice stays, and nothing matches it
    wait_for(lambda: run.done, what="the cancellations")
    gallery.refresh()
    assert gallery.status_filter.value == "queued" and gallery.visible_jobs() == []
    assert "No videos match." in tree_html(gallery.tiles)


def test_a_new_status_keeps_the_gallery_on_its_page(queued_client: sora_nb.Client, closing: list[Any]) -> None:
    run = queued_client.sweep(prompt=["a kite", "a tram", "a boat"]).start()
    gallery = run.gallery(page_size=1)
    closing.append(gallery)
    wait_for(lambda: run.counts() == {"queued": 3}, what="the queued jobs")
    # A person can choose a status once the gallery offers it (its next redraw, after the jobs' ledger writes).
    wait_for(lambda: "queued" in gallery.status_filter.options, what="the queued option")
    gallery.status_filter.value = "queued"
    gallery.next_button.click()
    gallery.refresh()
    assert "page 2 of 3" in gallery.page_label.value
    run.jobs[2].cancel()  # a status appears in the options: the filter and the page stay
    wait_for(lambda: "cancelled" in gallery.status_filter.options, what="the new status")
    gallery.refresh()
    assert gallery.status_filter.value == "queued" and "page 2 of 2" in gallery.page_label.value
    run.cancel()


def test_a_gallery_filter_on_no_axis_is_refused_naming_the_axes(small_run: sora_nb.Run,
                                                                 client: sora_nb.Client) -> None:
    with pytest.raises(ValueError,
                       match=r"'modle'.*Allowed: status, prompt, model, size, seconds, style, repeat\. Fix: "):
        small_run.gallery(modle="sora-2")  # a typo would otherwise show every video, unfiltered
    with pytest.raises(ValueError, match=r"'prompt'.*Allowed: status, model, size, seconds"):
        ui.gallery(client, prompt="a kite")  # the server's list is filtered by these only


def test_gallery_of_the_servers_list_plays_on_click(client: sora_nb.Client, here: Path, closing: list[Any]) -> None:
    for prompt in ("a kite", "a tram"):
        client.generate(prompt).wait(timeout=30)
    gallery = ui.gallery(client, page_size=10)
    closing.append(gallery)
    wait_for(lambda: len(gallery.tiles.children) == 2, what="the tiles")
    tile = gallery.tiles.children[0]
    screen, play = tile.children
    assert "<img" in html_of(screen)
    play.click()
    wait_for(lambda: "<video" in html_of(screen), what="the video")
    assert "autoplay" in html_of(screen) and gallery.error.value == ""
    assert len(list((client.run_root / "_server_gallery").glob("*.mp4"))) == 1


def tile_captions(gallery: ui.Gallery) -> list[str]:
    return [html_of(tile.children[0]) for tile in gallery.tiles.children]


def test_gallery_of_the_servers_list_refreshes_and_refetches_on_page_change(client: sora_nb.Client, here: Path,
                                                                            closing: list[Any]) -> None:
    client.generate("a kite").wait(timeout=30)
    gallery = ui.gallery(client, page_size=1)
    closing.append(gallery)
    assert gallery.refresh_button.layout.display is None  # shown for the server's list
    wait_for(lambda: len(gallery.tiles.children) == 1, what="the first tile")
    client.generate("a tram").wait(timeout=30)
    gallery.refresh_button.click()  # the newest video comes first
    wait_for(lambda: "a tram" in "".join(tile_captions(gallery)), what="the new video after Refresh")
    assert not gallery.next_button.disabled and "page 1" in gallery.page_label.value
    gallery.next_button.click()
    wait_for(lambda: "a kite" in "".join(tile_captions(gallery)), what="page 2")
    assert "page 2" in gallery.page_label.value and gallery.next_button.disabled
    client.generate("a boat").wait(timeout=30)
    gallery.prev_button.click()  # going back fetches the page again: the video made since is there
    wait_for(lambda: "a boat" in "".join(tile_captions(gallery)), what="the new video on page 1")
    gallery.next_button.click()  # and page 2 now starts after it
    wait_for(lambda: "a tram" in "".join(tile_captions(gallery)), what="the shifted page 2")
    assert gallery.error.value == ""
    run_gallery = client.session.gallery()
    closing.append(run_gallery)
    buttons = [w.description for w in walk(run_gallery) if isinstance(w, widgets.Button)]
    assert "Refresh" not in buttons and "Next ▶" in buttons  # a run's gallery is live by itself
    with pytest.raises(ValueError, match="server's list"):
        run_gallery.reload()


def test_filtering_the_servers_list_keeps_the_page_it_filters(client: sora_nb.Client, here: Path,
                                                               closing: list[Any]) -> None:
    for prompt in ("a kite", "a tram"):
        client.generate(prompt).wait(timeout=30)
    gallery = ui.gallery(client, page_size=1)
    closing.append(gallery)
    wait_for(lambda: "a tram" in "".join(tile_captions(gallery)), what="page 1")
    gallery.next_button.click()
    wait_for(lambda: "a kite" in "".join(tile_captions(gallery)), what="page 2")
    gallery.status_filter.value = "completed"  # filters the videos of this page: still page 2
    gallery.refresh()
    assert "page 2" in gallery.page_label.value and not gallery.prev_button.disabled
    gallery.prev_button.click()
    wait_for(lambda: "a tram" in "".join(tile_captions(gallery)), what="page 1 again")
    assert gallery.error.value == ""


def test_compare_grid_pivots_and_synchronises(small_run: sora_nb.Run, closing: list[Any]) -> None:
    grid = small_run.compare(rows="prompt", cols="model")
    closing.append(grid)
    grid.refresh()
    text = tree_html(grid)
    assert text.count("<video") == 4 and text.count("onplay=") == 4 and text.count("onpause=") == 4
    assert "sora-nb-play-all" in text and "sora-nb-pause-all" in text
    headers = "".join(w.value for w in grid.grid.children if isinstance(w, widgets.HTML))
    assert headers.index(">sora-2<") < headers.index(">sora-2-pro<") < headers.index("a red fox") < headers.index(
        "a lighthouse")
    with pytest.raises(ValueError, match="Allowed: prompt, model"):
        small_run.compare(rows="colour", cols="model")


@pytest.mark.parametrize("kind", ["compare", "gallery"])
def test_a_job_that_changes_redraws_its_own_cell_only(kind: str, client: sora_nb.Client, here: Path, sent: Sent,
                                                      closing: list[Any]) -> None:
    """Each status change re-sent the whole grid (one Output), so a video being watched went back to 0."""
    run = client.sweep(prompt=["a red fox", "a storm [fail]"], size="1280x720").start()
    widget = run.compare(rows="prompt", cols="model") if kind == "compare" else run.gallery()
    closing.append(widget)
    run.wait(timeout=60)
    widget.refresh()
    (fox,) = [job for job in run.jobs if job.prompt == "a red fox"]
    watched = [w for w in walk(widget) if isinstance(w, widgets.Output) and fox.video_path.name in html_of(w)]
    assert len(watched) == 1 and "a storm" not in html_of(watched[0])  # the fox's video, alone in its widget
    since = time.monotonic()
    (retried,) = run.retry_failed()  # another job appears and goes through its states
    run.wait(timeout=60)
    wait_for(lambda: retried.id in tree_html(widget) or retried.status in tree_html(widget), what="the retry")
    widget.refresh()
    assert sent.updates({watched[0].comm.comm_id}, since=since) == []
    assert watched[0] in walk(widget)


def test_results_table_shows_posters_and_sorts(small_run: sora_nb.Run, closing: list[Any]) -> None:
    table = small_run.table()
    closing.append(table)
    table.refresh()
    text = html_of(table.output)
    assert text.count("<tr data-job=") == 4 and text.count("<img") == 4 and "4 jobs" in table.summary.value
    table.sort_by.value = "model"
    table.ascending.value = False
    table.refresh()
    rows = html_of(table.output).split("<tr data-job=")[1:]
    assert ["sora-2-pro" in row for row in rows] == [True, True, False, False]
    assert table.ascending.description == "descending"


def test_results_table_pages_so_a_redraw_sends_one_page(small_run: sora_nb.Run, closing: list[Any]) -> None:
    """A 10,000-job run re-sent 500 rows (about 200 kB) at each redraw; now one page."""
    table = small_run.table(page_size=3)
    closing.append(table)
    table.refresh()
    assert html_of(table.output).count("<tr data-job=") == 3 and table.prev_button.disabled
    assert "rows 1-3 of 4 jobs · page 1 of 2" in table.summary.value
    table.next_button.click()
    table.refresh()
    assert html_of(table.output).count("<tr data-job=") == 1 and table.next_button.disabled
    table.sort_by.value = "model"  # a new order starts again at its first page
    table.refresh()
    assert table.page == 0 and html_of(table.output).count("<tr data-job=") == 3
    with pytest.raises(ValueError, match="page_size=0 must be at least 1"):
        small_run.table(page_size=0)


def test_a_table_in_run_order_makes_rows_and_reads_scores_of_its_page_only(
    small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch, closing: list[Any]
) -> None:
    """A 10,000-job run's table made all 10,000 rows (and read every stored metric) at each redraw, on
    the kernel's loop, to show 50 of them: about 2 s a redraw on a busy machine."""
    from sora_nb import _judging, _results

    table = small_run.table(page_size=3)
    closing.append(table)
    made: list[int] = []
    read: list[int | None] = []
    real_rows, real_scores = _results.records_to_dataframe, _judging.scores_of
    monkeypatch.setattr(_results, "records_to_dataframe", lambda records, **kw: made.append(len(records))
                        or real_rows(records, **kw))
    monkeypatch.setattr(_judging, "scores_of", lambda ledger, run_dir, checksums=None: read.append(
        None if checksums is None else len(checksums)) or real_scores(ledger, run_dir, *[c for c in [checksums] if c]))
    table.ascending.value = False
    table.refresh()
    rows = html_of(table.output).split("<tr data-job=")[1:]
    assert [small_run.jobs[i].id in rows[n] for n, i in enumerate((3, 2, 1))] == [True] * 3  # newest first
    # Each redraw made the page's 3 rows (the change of order may also have been drawn by the table's own
    # coalesced redraw on the loop, beside this refresh: one or two redraws, never a whole run's rows).
    assert made and set(made) == {3} and set(read) == {3}
    assert "rows 1-3 of 4 jobs · page 1 of 2" in table.summary.value
    table.sort_by.value = "model"  # a sort by a column needs every row
    table.refresh()
    assert made[-1] == 4 and read[-1] is None


def test_a_gallery_redraw_resolves_no_path_per_tile(small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch,
                                                    closing: list[Any]) -> None:
    """Each tile resolved its video's and poster's paths (a system call per path component) at every
    redraw: over 1 s of a kernel's loop blocked in a displayed 1,000-job sweep. The run directory is
    resolved once."""
    gallery = small_run.gallery()
    closing.append(gallery)
    gallery.refresh()
    resolved: list[Path] = []
    real = Path.resolve
    monkeypatch.setattr(Path, "resolve", lambda self, strict=False: resolved.append(self) or real(self, strict))
    gallery.refresh()
    assert tree_html(gallery.tiles).count("<figure") == 4 and resolved == []
    assert small_run.jobs[0].video_path == (small_run.run_dir / f"videos/{small_run.jobs[0].id}.mp4").resolve()


def test_a_progress_redraw_reads_each_request_once_and_a_second_redraw_hashes_no_request(
    small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch, closing: list[Any]
) -> None:
    """A 10,000-job run's progress found each request's latest job three times a redraw (two spec hashes
    a job each time: 60,000 hashes) and read every job's future under its lock (~1 us each): 150 ms of the
    kernel's loop a redraw, several times a second. The latest jobs are indexed once, job.done takes no lock."""
    import concurrent.futures

    from sora_nb._types import JobSpec

    progress = ui.RunProgress(small_run)
    closing.append(progress)
    progress.refresh()
    hashes: list[int] = []
    real_hash = JobSpec.__hash__
    monkeypatch.setattr(JobSpec, "__hash__", lambda spec: hashes.append(1) or real_hash(spec))
    progress.refresh()
    assert hashes == []
    assert progress.bar.value == 100.0 and progress.counts.value.startswith("4/4 done")
    locked: list[int] = []
    real_done = concurrent.futures.Future.done
    with monkeypatch.context() as patch:
        patch.setattr(concurrent.futures.Future, "done", lambda f: locked.append(1) or real_done(f))
        assert small_run.done and [job.done for job in small_run.jobs] == [True] * 4
    assert locked == []
    retried = small_run.submit([replace(small_run.jobs[0].spec, retry_of=small_run.jobs[0].id)])
    hashes.clear()
    assert small_run._latest_jobs() == [*small_run.jobs[1:4], *retried]  # a retry stands for its request
    assert len(hashes) == 2  # only the new job's spec, once to drop its request's old job, once to add it
    assert not retried[0].done or retried[0].status == "completed"
    small_run.wait(timeout=60)
    progress.refresh()
    assert progress.counts.value == "4/4 done · 4 completed · 1 retried"


def test_a_gallery_redraw_reads_the_axes_of_new_jobs_only(small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch,
                                                         closing: list[Any]) -> None:
    """A 10,000-job run's gallery read every job's axes four times a redraw (filters' values, the axes
    that vary, the jobs that pass the filters) to show 12 tiles: ~0.1-0.3 s of the kernel's loop a
    redraw and a page turn. The axes' values are indexed as jobs come, and no filter reads no job."""
    gallery = small_run.gallery(page_size=1)
    closing.append(gallery)
    gallery.refresh()
    assert set(gallery.filters) == {"model", "prompt"}
    read: list[str] = []
    real_spec = Job.spec
    monkeypatch.setattr(Job, "spec", property(lambda job: read.append(job.id) or real_spec.fget(job)))
    gallery.next_button.click()
    gallery.refresh()
    assert len(set(read)) <= 1  # the one tile shown (its caption), not the 4 jobs
    assert "page 2 of 4" in gallery.page_label.value
    assert list(gallery.filters["model"].options) == ["(all)", "sora-2", "sora-2-pro"]
    gallery.filters["model"].value = "sora-2-pro"
    gallery.refresh()
    assert "page 1 of 2 · 2 videos" in gallery.page_label.value


def test_turning_the_page_or_the_sort_of_a_sorted_table_makes_no_rows_again(
    small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch, closing: list[Any]
) -> None:
    """Sorted by a column, a 10,000-job table made all its rows (~0.3 s on the kernel's loop) at each page
    turn and sort change of a finished run. They are made again only once the run or its ledger changed."""
    from sora_nb import _results

    table = small_run.table(page_size=3, sort_by="model")
    closing.append(table)
    table.refresh()
    made: list[int] = []
    real_rows = _results.records_to_dataframe
    monkeypatch.setattr(_results, "records_to_dataframe", lambda records, **kw: made.append(len(records))
                        or real_rows(records, **kw))
    table.next_button.click()
    table.refresh()
    assert "rows 4-4 of 4 jobs" in table.summary.value
    table.sort_by.value = "prompt"
    table.refresh()
    assert made == [] and "rows 1-3 of 4 jobs" in table.summary.value
    rows = html_of(table.output).split("<tr data-job=")[1:]
    expected = list(table.dataframe()["job_id"])[:3]  # (made afresh: the public frame is the caller's own)
    assert [row.split('"')[1] for row in rows] == expected and made == [4]
    small_run._runtime.call_and_wait(small_run._job_changed, small_run.jobs[0])  # what the runner calls
    table.refresh()
    assert made == [4, 4]



def test_a_sorted_table_shows_a_rating_another_process_wrote_within_one_clock_tick(
    small_run: sora_nb.Run, closing: list[Any]
) -> None:
    """A sorted table keeps its rows until the run or its ledger file changes, told by the files' times. A
    file's time moves once a clock tick (4 ms on many Linux file systems, 2 s on FAT): a rating written by
    another process within the tick of the table's last redraw was never shown. Here the other writer's
    commit keeps the files' times, as such a tick would."""
    import os

    from sora_nb._judging import add_rating
    from sora_nb._ledger import LEDGER_FILE, Ledger

    table = small_run.table(sort_by="model")
    closing.append(table)
    table.refresh()
    assert table._rows()["stars_mean"].isna().all()
    files = [small_run.run_dir / name for name in (LEDGER_FILE, f"{LEDGER_FILE}-wal")]
    times = [(path.stat().st_atime_ns, path.stat().st_mtime_ns) for path in files]
    with Ledger.open(small_run.run_dir) as other:  # another process's connection to the same ledger
        add_rating(other, small_run.jobs[0].id, stars=5, tags=(), note="", rater="bo")
    for path, (atime, mtime) in zip(files, times, strict=True):
        os.utime(path, ns=(atime, mtime))  # the same tick
    table.refresh()
    rows = table._rows()
    assert list(rows.loc[rows["job_id"] == small_run.jobs[0].id, "stars_mean"]) == [5.0]


@pytest.mark.slow
def test_a_sorted_table_shows_ratings_another_process_wrote_and_hid_behind_a_checkpoint(
    small_run: sora_nb.Run, closing: list[Any]
) -> None:
    """Another process rates a video, empties the WAL into the ledger file (``wal_checkpoint(TRUNCATE)``: the
    WAL index is reset, the file keeps its size) and keeps the files' times, three times over: the sorted
    table must show each rating, never its rows from before."""
    from fault_support import child_env

    from sora_nb._ledger import LEDGER_FILE

    script = (
        "import os, sys\n"
        "from sora_nb._judging import add_rating\n"
        "from sora_nb._ledger import LEDGER_FILE, Ledger\n"
        "run_dir, job_id, stars = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "paths = [os.path.join(run_dir, LEDGER_FILE + end) for end in ('', '-wal')]\n"
        "times = [(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns) for p in paths]\n"
        "import sqlite3\n"
        "with Ledger.open(run_dir) as ledger:\n"
        "    add_rating(ledger, job_id, stars=stars, tags=(), note='', rater='bo')\n"
        "    checkpointer = sqlite3.connect(os.path.join(run_dir, LEDGER_FILE))  # a writer's (query() reads)\n"
        "    checkpointer.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "    checkpointer.close()\n"
        "for path, (atime, mtime) in zip(paths, times):\n"
        "    os.utime(path, ns=(atime, mtime))  # the same clock tick\n"
    )
    table = small_run.table(sort_by="model")
    closing.append(table)
    job_id = small_run.jobs[0].id
    for stars in (5, 1, 3):
        table.refresh()
        table._rows()
        subprocess.run([sys.executable, "-c", script, str(small_run.run_dir), job_id, str(stars)], check=True,
                       env=child_env(), timeout=120)
        assert (small_run.run_dir / f"{LEDGER_FILE}-wal").stat().st_size == 0  # the checkpoint emptied it
        table.refresh()
        rows = table._rows()
        ratings = list(small_run.judgments()["stars"])
        assert list(rows.loc[rows["job_id"] == job_id, "stars_mean"]) == [sum(ratings) / len(ratings)]


def test_a_sorted_table_of_a_closed_client_shows_a_rating_another_process_wrote_within_one_clock_tick(
    small_run: sora_nb.Run, client: sora_nb.Client, closing: list[Any]
) -> None:
    """Once its client is closed the run has no connection to its ledger to ask, and the other writer's
    close takes the WAL and its index away: the files' times, sizes and inodes are all that is left, and
    a rating written within the tick of the last redraw keeps the ledger file's time and size."""
    import os

    from sora_nb._judging import add_rating
    from sora_nb._ledger import LEDGER_FILE, Ledger

    table = small_run.table(sort_by="model")
    closing.append(table)
    client.close()
    table.refresh()
    assert table._rows()["stars_mean"].isna().all()
    path = small_run.run_dir / LEDGER_FILE
    stat = path.stat()
    with Ledger.open(small_run.run_dir) as other:  # another process's connection to the same ledger
        add_rating(other, small_run.jobs[0].id, stars=5, tags=(), note="", rater="bo")
    assert path.stat().st_size == stat.st_size and not path.with_name(f"{LEDGER_FILE}-shm").exists()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same tick
    table.refresh()
    rows = table._rows()
    assert list(rows.loc[rows["job_id"] == small_run.jobs[0].id, "stars_mean"]) == [5.0]


def test_a_sorted_table_turns_its_pages_right_after_its_client_closed(
    small_run: sora_nb.Run, client: sora_nb.Client, closing: list[Any]
) -> None:
    """Closing the client closes the run's ledger: for the next 2 s (a file clock's tick) the table cannot tell
    from the files whether another process wrote, and makes all its rows again at each redraw (a page turn of
    5,000 sorted jobs: 75-250 ms then, 5-10 ms after). Within that window, sorting and paging show this run's
    rows, in the order asked, and nothing is raised (this held before; no other test turned pages there)."""
    table = small_run.table(sort_by="prompt", page_size=1)
    closing.append(table)
    table.refresh()
    client.close()
    table.ascending.value = False
    table.next_button.click()
    table.refresh()
    assert table.error.value == "" and table.summary.value == "rows 2-2 of 4 jobs · page 2 of 4"
    # The prompt axis sorts in the sweep's order of its values (a categorical), not alphabetically.
    expected = small_run.to_dataframe().sort_values("prompt", ascending=False, kind="stable")["job_id"].tolist()
    assert table._page()[0]["job_id"].tolist() == expected[1:2]
    assert table.dataframe()["job_id"].tolist() == expected


def test_a_table_whose_client_and_loop_are_gone_still_sorts_and_pages_its_run(tmp_path: Path,
                                                                              closing: list[Any]) -> None:
    """A script's ``asyncio.run`` made the client and its table; both outlive the loop. Sorting then showed
    "RuntimeError: Event loop is closed" in the table, every later click did nothing (its redraw was never
    made, and none was asked again), and ``table.refresh()`` raised it into the notebook. Nothing can change
    the run any more: the table is redrawn at once, from the run's last rows, sorted and paged."""
    import asyncio

    async def make() -> tuple[sora_nb.Run, ui.ResultsTable]:
        client = sora_nb.connect("simulator", seed=3, time_scale=0.004, run_root=tmp_path, measure=False)
        run = await client.sweep(prompt=[f"a kite, take {i}" for i in range(5)], seconds="4").start()
        table = run.table(page_size=2, sort_by="prompt")
        table.refresh()
        await client.aclose()
        return run, table

    run, table = asyncio.run(make())  # the loop that owns them is closed from here on
    closing.append(table)
    table.ascending.value = False
    table.next_button.click()
    assert table.error.value == ""
    assert table.summary.value == "rows 3-4 of 5 jobs · page 2 of 3"
    expected = sorted((job.prompt for job in run.jobs), reverse=True)[2:4]
    text = table.output.outputs[0]["data"]["text/html"]
    assert [prompt for prompt in expected if prompt in text] == expected
    assert not any(f"take {i}" in text for i in (4, 3, 0))  # none of the other pages' rows
    table.refresh()  # no RuntimeError, no coroutine left unawaited
    table.sort_by.value = "(run order)"
    assert table.summary.value == "rows 1-2 of 5 jobs · page 1 of 3" and table.error.value == ""


def test_a_slow_redraw_waits_longer_before_the_next(small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch,
                                                   closing: list[Any]) -> None:
    """A 10,000-job table took ~0.4 s to redraw, once a second: the kernel answered cells in seconds.

    Every redraw's cost is read from the widget's own clock, which moves ``step`` per reading: the "quick"
    redraws were real ones, and on a busy machine two of them took over 50 ms (1 s of interval), which
    failed the test once."""
    from sora_nb.ui import _sync

    class Clock:
        now, step = 0.0, 0.2

        def __call__(self) -> float:
            self.now += self.step
            return self.now

    table = small_run.table()
    closing.append(table)
    table.refresh()
    clock = Clock()
    monkeypatch.setattr(table, "_clock", clock)  # this widget's clock alone: other threads read theirs
    table.refresh()
    table.refresh()
    assert table._coalescer.interval == pytest.approx(_sync.LOAD_FACTOR * 0.2)  # 4 s, not the 1 s asked for
    clock.step = 1.0  # a redraw of a second: at most MAX_INTERVAL between two
    table.refresh()
    table.refresh()
    assert table._coalescer.interval == _sync.MAX_INTERVAL
    clock.step = 0.001  # quick redraws: back to the interval asked for
    table.refresh()
    assert table._coalescer.interval == 1.0


def test_a_table_sorted_by_a_column_it_does_not_show_is_refused_naming_them(small_run: sora_nb.Run) -> None:
    with pytest.raises(ValueError, match=r"sort_by='total_s'.*Allowed: prompt, status\. Fix: .*columns="):
        small_run.table(columns=["prompt", "status"], sort_by="total_s")  # not "Invalid selection"


_SCRIPT_BACKGROUND_LOOP = """
import sora_nb, sora_nb.ui
client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root="runs")
run = client.sweep(prompt=["a kite", "a tram"], seconds="4").start()
run.wait(timeout=60)
server_gallery = sora_nb.ui.gallery(client)
server_gallery.reload().result(timeout=60)
widgets = [run.gallery(), run.compare(cols="seconds"), run.table(), sora_nb.ui.progress(run),
           sora_nb.ui.card(run.jobs[0]), sora_nb.ui.prompt(client), sora_nb.ui.sweep(client)]
"""

_SCRIPT_CLOSED_LOOP = """
import asyncio, sora_nb, sora_nb.ui

async def main():
    client = sora_nb.connect("simulator", seed=1, time_scale=0.002, run_root="runs")
    await client.generate("a kite", seconds="4")
    return client, [sora_nb.ui.gallery(client), client.session.gallery(), client.session.table(),
                    sora_nb.ui.card(client.session.jobs[0])]

client, widgets = asyncio.run(main())  # the loop that owns them is closed from here on
widgets[1].close()
"""


def test_a_collected_widget_hands_nothing_to_the_loop(slow_client: sora_nb.Client,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = slow_client
    job = client.generate("a kite")
    card = ui.card(job)
    wait_for(lambda: job._observers, what="the card's subscription")
    handed: list[Any] = []
    with monkeypatch.context() as patch:
        patch.setattr(client._runtime, "call", lambda fn, *args: handed.append(fn))
        card.__del__()  # what the garbage collector does (ipywidgets' own __del__ would call close())
    assert handed == [] and card._coalescer.closed and card.comm is None
    job.cancel()
    wait_for(lambda: not job._observers, what="the subscription to end itself at the next change")


@pytest.mark.parametrize("script", [_SCRIPT_BACKGROUND_LOOP, _SCRIPT_CLOSED_LOOP], ids=["background-loop",
                                                                                      "closed-loop"])
def test_widgets_left_open_in_a_script_exit_quietly(script: str, tmp_path: Path) -> None:
    """Widgets nobody closed are collected at interpreter exit (ipywidgets' ``__del__`` closes them),
    when the engine's loop may be closed: nothing may be printed."""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


# ---------------------------------------------------------------------------------------- the key


def test_the_api_key_never_enters_widget_state(tmp_path: Path, sent: Sent, closing: list[Any]) -> None:
    key = "sk-test-" + "k3y" * 12
    seen_keys: list[str] = []
    videos: dict[str, dict[str, Any]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen_keys.append(request.headers.get("authorization", ""))
        path = request.url.path
        if request.method == "POST" and path.endswith("/videos"):
            vid = f"video_{len(videos) + 1}"
            videos[vid] = {"id": vid, "object": "video", "status": "queued", "model": "sora-2", "progress": 0,
                           "created_at": 1, "size": "720x1280", "seconds": "4"}
            return httpx.Response(200, json=videos[vid])
        if request.method == "GET" and path.endswith("/videos"):
            data = list(videos.values())
            return httpx.Response(200, json={"object": "list", "data": data, "has_more": False,
                                             "first_id": data[0]["id"] if data else None,
                                             "last_id": data[-1]["id"] if data else None})
        vid = path.rsplit("/", 1)[-1]
        if request.method == "GET" and vid in videos:
            return httpx.Response(200, json={**videos[vid], "status": "in_progress", "progress": 40})
        return httpx.Response(404, json={"error": {"message": "no", "type": "invalid_request_error"}})

    client = sora_nb.connect("openai-compatible", base_url="http://gateway.test/v1", api_key=key,
                             transport=httpx.MockTransport(handler), run_root=tmp_path / "runs")
    try:
        box = ui.prompt(client, prompt="a secretive corgi")
        closing.append(box)
        box.generate_button.click()
        builder = ui.sweep(client, prompts=["a", "b"], budget_usd=0)
        closing.append(builder)
        builder.launch_button.click()
        assert builder.error.value == "" and box.error.value == ""
        run = builder.run
        assert run is not None
        others = [ui.gallery(client), ui.gallery(run), ui.compare(run), ui.table(run), ui.progress(run),
                  ui.gallery(client, media="bytes"), ui.gallery(run, media="bytes"), ui.compare(run, media="bytes"),
                  ui.table(run, media="bytes")]
        closing.extend(others)
        wait_for(lambda: len(seen_keys) > 6, what="requests")
        for card in box.cards.children:
            card.refresh()
        for item in others:
            item.refresh()
        assert seen_keys and all(h == f"Bearer {key}" for h in seen_keys)  # the key was in use all along
        assert_key_absent(key, box, builder, *others)
        with sent.lock:
            assert key not in json.dumps([m[2] for m in sent.messages], default=str)
        for job in box.jobs:
            job.cancel()
        run.cancel()
    finally:
        client.close()


def test_media_bytes_mode_sends_the_file_as_a_video_widget(client: sora_nb.Client, closing: list[Any]) -> None:
    job = client.generate("a paper plane").wait(timeout=30)
    card = ui.JobCard(job, media="bytes")
    closing.append(card)
    wait_for(lambda: card.media.children, what="the player")
    (player,) = card.media.children
    assert isinstance(player, widgets.Video) and player.value == job.video_path.read_bytes()
    assert player.autoplay is False
    with pytest.raises(ValueError, match="media="):
        ui.JobCard(job, media="embed")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- media="bytes" (VS Code)


def test_media_auto_picks_bytes_in_vscode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ui._job.resolve_media("auto") == "url"
    monkeypatch.setenv("VSCODE_PID", "1")
    assert ui._job.resolve_media("auto") == "bytes"
    assert ui._job.resolve_media("url") == "url"  # asked for, it stays
    with pytest.raises(ValueError, match="media="):
        ui._job.resolve_media("embed")


def test_gallery_bytes_mode_shows_posters_and_plays_in_one_player(small_run: sora_nb.Run, sent: Sent,
                                                                  closing: list[Any]) -> None:
    gallery = small_run.gallery(media="bytes", page_size=3, columns=3)
    closing.append(gallery)
    gallery.refresh()
    jobs = gallery.visible_jobs()
    tiles = gallery.tiles.children
    assert len(tiles) == 3 and "page 1 of 2" in gallery.page_label.value and gallery.player.layout.display == "none"
    for tile, job in zip(tiles, jobs, strict=False):
        assert isinstance(tile.picture, widgets.Image) and tile.picture.value == job.thumbnail_path.read_bytes()
        assert job.model in tile.caption.value and not tile.play.disabled
    assert not any(isinstance(w, widgets.Video) for w in walk(gallery))  # nothing is sent before a click

    tiles[1].play.click()
    assert gallery.error.value == ""
    label, player = gallery.player.children
    assert isinstance(player, widgets.Video) and player.value == jobs[1].video_path.read_bytes()
    assert player.autoplay and player.loop and gallery.player.layout.display is None
    assert jobs[1].prompt in label.value
    since = time.monotonic()
    tiles[1].play.click()  # the same video again: nothing is sent again
    assert gallery.player.children[1] is player and sent.updates({player.comm.comm_id}, since=since) == []
    tiles[0].play.click()
    assert gallery.player.children[1].value == jobs[0].video_path.read_bytes() and player.comm is None

    gallery.next_button.click()  # paging and filters work as with URLs, and tiles are kept, not sent again
    gallery.refresh()
    assert len(gallery.tiles.children) == 1 and gallery.next_button.disabled
    gallery.filters["model"].value = "sora-2-pro"
    gallery.refresh()
    shown = gallery.tiles.children
    assert len(shown) == 2 and all("sora-2-pro" in t.caption.value for t in shown)
    assert len(gallery._bytes_tiles) == 4 and all(t in gallery._bytes_tiles.values() for t in shown)  # kept
    gallery.filters["prompt"].value = "a red fox"
    gallery.refresh()
    (tile,) = gallery.tiles.children
    assert "sora-2-pro" in tile.caption.value and "a red fox" in tile.caption.value
    assert_no_file_urls(gallery)


def test_gallery_bytes_mode_of_the_servers_list(client: sora_nb.Client, here: Path, closing: list[Any]) -> None:
    for prompt in ("a kite", "a tram"):
        client.generate(prompt).wait(timeout=30)
    gallery = ui.gallery(client, page_size=10, media="bytes")
    closing.append(gallery)
    wait_for(lambda: len(gallery.tiles.children) == 2 and all(isinstance(t.picture, widgets.Image)
                                                              for t in gallery.tiles.children), what="the posters")
    cache = client.run_root / "_server_gallery"
    posters = sorted(p.read_bytes() for p in cache.glob("*.webp"))
    assert len(posters) == 2 and sorted(bytes(t.picture.value) for t in gallery.tiles.children) == posters
    gallery.tiles.children[0].play.click()
    wait_for(lambda: len(gallery.player.children) == 2, what="the player")
    (video,) = cache.glob("*.mp4")
    assert gallery.player.children[1].value == video.read_bytes() and gallery.error.value == ""
    wait_for(lambda: gallery.tiles.children[0].play.description == "▶ Play", what="the button back")
    assert_no_file_urls(gallery)


def test_compare_grid_bytes_mode_fills_cells_live_and_sends_each_video_once(
    client: sora_nb.Client, here: Path, sent: Sent, closing: list[Any]
) -> None:
    run = client.sweep(prompt=["a red fox", "a storm [fail]"], model=["sora-2", "sora-2-pro"],
                       size="1280x720").start()
    grid = run.compare(rows="prompt", cols="model", media="bytes")
    closing.append(grid)
    run.wait(timeout=60)
    wait_for(lambda: sum(isinstance(w, widgets.Video) for w in walk(grid)) == 2, what="the two videos")
    grid.refresh()
    shown = html.unescape(tree_html(grid))
    assert "sora-nb-play-all" in shown and "addEventListener('pause'" in shown  # synchronised in the browser
    children = grid.grid.children
    assert len(children) == 3 + 2 * 3
    assert grid.grid.layout.grid_template_columns == "fit-content(240px) repeat(2, max-content)"
    assert ">sora-2<" in children[1].value and ">sora-2-pro<" in children[2].value and "a red fox" in children[3].value
    by_job = {job.id: job for job in run.jobs}
    videos = {}
    for cell, (prompt, model) in zip([children[4], children[5]], [("a red fox", "sora-2"), ("a red fox", "sora-2-pro")],
                                     strict=True):
        (box,) = cell.children
        label, player = box.children  # each video under what tells it apart from the cell's others
        (job,) = [j for j in by_job.values() if (j.prompt, j.model) == (prompt, model)]
        assert label.value.endswith(">4 s</div>")
        assert isinstance(player, widgets.Video) and player.value == job.video_path.read_bytes()
        assert player.autoplay and player.loop
        videos[job.id] = player
    assert all(c.children[0].value.count("failed") == 1 for c in children[7:9])

    since = time.monotonic()
    retried = run.retry_failed()  # new jobs in the storm's cells: those cells change, the videos stay
    run.wait(timeout=60)
    wait_for(lambda: all(len(c.children) == 2 for c in grid.grid.children[7:9]), what="the retried jobs")
    grid.refresh()
    assert len(retried) == 2
    assert [c.children[0].children[1] for c in grid.grid.children[4:6]] == list(videos.values())  # the same
    assert sent.updates({v.comm.comm_id for v in videos.values()}, since=since) == []
    assert_no_file_urls(grid)


def test_results_table_bytes_mode_inlines_posters_without_links(small_run: sora_nb.Run, closing: list[Any]) -> None:
    table = small_run.table(media="bytes")
    closing.append(table)
    table.refresh()
    text = html_of(table.output)
    rows = re.findall(r'<tr data-job="([^"]+)"><td><img src="data:image/webp;base64,([^"]+)"', text)
    assert len(rows) == 4 and "<a " not in text
    by_id = {job.id: job for job in small_run.jobs}
    for job_id, data in rows:
        assert base64.b64decode(data) == by_id[job_id].thumbnail_path.read_bytes()
    assert_no_file_urls(table)


def test_bytes_mode_names_a_video_too_large_to_send(small_run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch,
                                                    closing: list[Any]) -> None:
    monkeypatch.setattr(ui._job, "MAX_WIDGET_BYTES", 10)
    gallery = small_run.gallery(media="bytes")
    grid = small_run.compare(media="bytes")
    closing.extend([gallery, grid])
    gallery.refresh()
    gallery.tiles.children[0].play.click()
    grid.refresh()
    for top in (gallery, grid):
        assert not any(isinstance(w, widgets.Video) for w in walk(top))
        assert tree_html(top).count("is too large to send to the browser") == (1 if top is gallery else 4)
    assert small_run.jobs[0].video_path.name in tree_html(gallery)
