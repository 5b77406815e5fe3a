"""Every widget offers exactly what its profile's capabilities allow, on every profile (issue 11).

For each profile of ``sora_nb.PROFILES`` (the simulator, the OpenAI-shaped gateways and the hosted
services), on that profile's own simulator dialect: the prompt box and the sweep builder offer the
profile's models and, for each model, its sizes and durations (free text where the profile does not know
them, never another service's list); and Generate / Launch with the choices they start with is accepted
by the dialect (counted at the server: one create, no refusal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from support import FAST, image_bytes, write_image

import sora_nb
from sora_nb import ui
from sora_nb._cli import main
from sora_nb.simulator import SimulatorConfig, SimulatorTransport

PROFILE_NAMES = list(sora_nb.PROFILES)


@pytest.fixture(params=PROFILE_NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(name: str) -> SimulatorTransport:
    """The profile's own simulator dialect (the OpenAI simulator for OpenAI-shaped ones), as strict about
    models as the profile says its server is; its audit counts the creates it accepted."""
    profile = sora_nb.PROFILES[name]
    return SimulatorTransport(SimulatorConfig(seed=3, time_scale=FAST, max_side=48, fps=4, dialect=profile.dialect,
                                              strict_models=not profile.capabilities.open_models))


@pytest.fixture
def client(name: str, server: SimulatorTransport, tmp_path: Path) -> Iterator[sora_nb.Client]:
    with sora_nb.connect(name, simulator=server.config, transport=server, run_root=tmp_path) as c:
        yield c


def offered(chooser: widgets.Widget) -> tuple[str, ...] | None:
    """The values a chooser offers, or ``None`` when it takes free text (what it suggests is not a limit)."""
    if isinstance(chooser, (widgets.Text, widgets.Combobox)) and not getattr(chooser, "ensure_option", False):
        return None
    return tuple(value if isinstance(value, str) else value[1] for value in chooser.options)


def expected_models(caps: Any) -> tuple[str, ...] | None:
    return None if caps.open_models else caps.model_names()


# ---------------------------------------------------------------------------------------- the prompt box


def test_prompt_box_offers_exactly_the_profiles_choices(client: sora_nb.Client, closing: list[Any]) -> None:
    caps = client.profile.capabilities
    box = ui.prompt(client)
    closing.append(box)
    assert offered(box.model) == expected_models(caps)
    assert box.model.value == caps.default_model
    for model in caps.model_names() or (caps.default_model,):
        box.model.value = model
        assert offered(box.size) == caps.sizes(model), model
        for size in caps.sizes(model) or (str(box.size.value),):
            box.size.value = size
            assert offered(box.seconds) == caps.seconds(model, size), (model, size)


def test_prompt_box_generates_with_its_default_choices(client: sora_nb.Client, server: SimulatorTransport,
                                                       closing: list[Any]) -> None:
    box = ui.prompt(client, prompt="a corgi surfing at sunset")
    closing.append(box)
    box.generate_button.click()
    assert box.error.value == ""
    (job,) = box.jobs
    assert job.wait(timeout=60).status == "completed", job.error
    assert len(server.audit()) == 1


def test_every_choice_the_prompt_box_offers_is_accepted(client: sora_nb.Client, server: SimulatorTransport,
                                                        closing: list[Any]) -> None:
    """Each model, each size it offers, at its shortest and longest offered duration: Generate is taken by
    the client and by the service's dialect (one create each at the server), never refused."""
    box = ui.prompt(client, prompt="a lighthouse at dusk")
    closing.append(box)
    for model in offered(box.model) or (str(box.model.value),):
        box.model.value = model
        for size in offered(box.size) or (str(box.size.value),):
            box.size.value = size
            durations = offered(box.seconds) or (str(box.seconds.value),)
            for seconds in dict.fromkeys((durations[0], durations[-1])):
                box.seconds.value = seconds
                box.generate_button.click()
                assert box.error.value == "", (model, size, seconds, box.error.value)
    for job in box.jobs:
        assert job.wait(timeout=60).status == "completed", (job.model, job.size, job.seconds, job.error)
    assert len(server.audit()) == len(box.jobs)


def test_the_prompt_box_the_estimate_and_the_ledger_state_one_price(client: sora_nb.Client,
                                                                     closing: list[Any]) -> None:
    """Price × seconds is computed once: the cost beside Generate, a sweep's estimate and the job's
    ``estimated_cost_usd`` are the same figure (or all "unknown") on every profile."""
    box = ui.prompt(client, prompt="a fox at dawn")
    closing.append(box)
    model, size, seconds = str(box.model.value), str(box.size.value), str(box.seconds.value)
    estimate = client.sweep(prompt="a fox at dawn", model=model, size=size, seconds=seconds).estimate().cost_usd
    job = box.generate().wait(timeout=60)
    ledger = job.run.to_dataframe()["estimated_cost_usd"].iloc[-1]
    expected = client.profile.capabilities.cost_usd(model, size, seconds)
    if expected is None:
        assert "cost unknown" in box.cost.value and estimate is None and ledger != ledger  # NaN
    else:
        assert box.cost.value.startswith(f"est. ${expected:,.2f} ") and estimate == ledger == expected


# ---------------------------------------------------------------------------------------- the sweep builder


def test_sweep_builder_offers_exactly_the_profiles_choices(client: sora_nb.Client, closing: list[Any]) -> None:
    caps = client.profile.capabilities
    builder = ui.sweep(client)
    closing.append(builder)
    assert offered(builder.models) == expected_models(caps)
    for model in caps.model_names() or (caps.default_model,):
        builder.models.value = (model,) if isinstance(builder.models, widgets.SelectMultiple) else model
        assert offered(builder.sizes) == caps.sizes(model), model
        for size in caps.sizes(model) or ():
            builder.sizes.value = (size,)
            assert offered(builder.seconds) == caps.seconds(model, size), (model, size)
        if not caps.sizes(model):
            assert offered(builder.seconds) == caps.seconds(model), model


def test_sweep_builder_launches_with_its_default_choices(client: sora_nb.Client, server: SimulatorTransport,
                                                         closing: list[Any]) -> None:
    builder = ui.sweep(client, prompts=["a calm lake"], budget_usd=0)
    closing.append(builder)
    builder.launch_button.click()
    assert builder.error.value == ""
    run = builder.run
    assert run is not None and len(run) == 1
    assert run.wait(timeout=60).counts() == {"completed": 1}, [job.error for job in run.jobs]
    assert len(server.audit()) == 1


# ---------------------------------------------------------------------------------------- the storyboard editor


def test_storyboard_editor_offers_exactly_the_profiles_choices(client: sora_nb.Client, closing: list[Any]) -> None:
    caps = client.profile.capabilities
    builder = ui.storyboard(client)
    closing.append(builder)
    assert offered(builder.model) == expected_models(caps)
    for model in caps.model_names() or (caps.default_model,):
        builder.model.value = model
        assert offered(builder.size) == caps.sizes(model), model
        for size in caps.sizes(model) or (str(builder.size.value),):
            builder.size.value = size
            for row in builder.rows.children:
                assert offered(row.seconds) == caps.seconds(model, size), (model, size)


# ---------------------------------------------------------------------------------------- the command line


def test_the_cli_generates_with_the_profiles_defaults_and_names_its_choices(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caps = sora_nb.PROFILES[name].capabilities
    common = ["--profile", name, "--simulator", "--run-root", str(tmp_path), "--time-scale", "0.002", "--quiet"]
    assert main(["generate", "a fox at dawn", *common]) == 0
    assert list(sora_nb.load_run(next(tmp_path.glob("*/ledger.sqlite")).parent)["status"]) == ["completed"]
    durations = caps.seconds(caps.default_model, caps.default_size_for(caps.default_model))
    if durations is not None:  # a duration the profile does not allow is refused, naming the ones it does
        assert main(["generate", "a fox", "--seconds", "99", *common]) == 2
        err = capsys.readouterr().err
        assert "--seconds 99 is not allowed" in err and f"Allowed: {', '.join(map(repr, durations))}" in err


# ---------------------------------------------------------------------------------------- reference images


def upload(box: Any, data: bytes) -> None:
    """As the browser sends an upload: through the widget's deserializer."""
    box.upload.set_state({"value": [{"name": "photo.png", "type": "image/png", "size": len(data),
                                     "content": memoryview(data), "last_modified": 1_700_000_000_000}]})


def test_a_service_that_scales_the_reference_takes_it_at_any_size(tmp_path: Path) -> None:
    """Only the contract wants the image at exactly the video's size; the prompt box asked every service."""
    with sora_nb.connect("gemini", simulator=True, time_scale=FAST, run_root=tmp_path) as client:
        assert not client.profile.capabilities.reference_exact_size
        box = ui.prompt(client, prompt="this photo, slowly zooming in")
        try:
            upload(box, image_bytes((640, 480)))
            assert box.reference is not None and "scaled by the server" in box.reference_status.value
            assert box.generate().wait(timeout=60).status == "completed"
        finally:
            box.close()


def test_a_model_that_takes_no_image_says_so_before_sending(tmp_path: Path) -> None:
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path) as client:
        caps = client.profile.capabilities
        models = {**(caps.models or {}), "sora-2": replace((caps.models or {})["sora-2"], image_input=False)}
        client.profile = client._runner.profile = replace(client.profile, capabilities=replace(caps, models=models))
        box = ui.prompt(client)
        try:
            assert box.upload.disabled
            box.model.value = "sora-2-pro"
            assert not box.upload.disabled
            with pytest.raises(sora_nb.ValidationError, match="input_reference: sora-2 takes no reference image"):
                client.generate("a fox", model="sora-2", input_reference=write_image(tmp_path / "a.png", (720, 1280)))
            assert client.session.jobs == []
        finally:
            box.close()
