"""Sweeps, the pure core: expansion, estimates, budgets and sweep files (no I/O beyond tmp_path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sora_nb._capabilities import Capabilities, ModelSpec
from sora_nb._cost import Estimate, check_budget, estimate
from sora_nb._errors import BudgetExceededError, SoraError, ValidationError
from sora_nb._grid import SweepPlan, expand
from sora_nb._styles import STYLES
from sora_nb._sweepfile import load_sweep_file
from sora_nb._types import JobSpec

PROMPTS = ["a corgi surfing", "a cat skiing", "a fox reading"]


def _grid(**overrides: Any) -> SweepPlan:
    kwargs: dict[str, Any] = dict(prompt=PROMPTS, model=["sora-2", "sora-2-pro"], seconds=["4", "8"], repeats=2)
    kwargs.update(overrides)
    return expand(**kwargs)


def _key(job: JobSpec) -> tuple[Any, ...]:
    return (job.prompt, job.model, job.size, job.seconds, job.style, job.repeat)


# --- grid ----------------------------------------------------------------------------------------


def test_product_count_is_the_cartesian_product() -> None:
    plan = _grid()
    assert len(plan.jobs) == 3 * 2 * 2 * 2 == 24
    assert plan.invalid == ()
    assert all(isinstance(job, JobSpec) for job in plan.jobs)


def test_order_is_prompt_major_then_model_size_seconds_style_repeat() -> None:
    plan = expand(
        prompt=["p1", "p2"], model=["sora-2", "sora-2-pro"], size=["720x1280", "1280x720"],
        seconds=[4, 8], style=[None, "noir"], repeats=2,
    )  # fmt: skip
    expected = [
        (p, m, sz, s, st, r)
        for p in ["p1", "p2"]
        for m in ["sora-2", "sora-2-pro"]
        for sz in ["720x1280", "1280x720"]
        for s in ["4", "8"]
        for st in [None, "noir"]
        for r in range(2)
    ]
    assert [_key(job) for job in plan.jobs] == expected
    assert expand(**_grid_kwargs()).jobs == expand(**_grid_kwargs()).jobs  # stable


def _grid_kwargs() -> dict[str, Any]:
    return dict(prompt=PROMPTS, model=["sora-2-pro", "sora-2"], seconds=[8, 4])


def test_scalars_are_one_value_axes_with_catalog_defaults() -> None:
    (job,) = expand(prompt="a corgi surfing").jobs
    assert (job.model, job.size, job.seconds, job.style, job.repeat) == ("sora-2", "720x1280", "4", None, 0)
    assert job.kind == "create"
    assert job.input_reference is None


def test_axes_of_each_job_and_of_the_plan() -> None:
    plan = _grid()
    assert plan.axes == ("prompt", "model", "size", "seconds", "style", "repeat")
    job = plan.jobs[-1]
    assert list(job.axes) == list(plan.axes)
    assert job.axes == {
        "prompt": "a fox reading",
        "model": "sora-2-pro",
        "size": "720x1280",
        "seconds": "8",
        "style": None,
        "repeat": 1,
    }


def test_axes_dicts_are_not_shared_between_jobs() -> None:
    first, second = expand(prompt="p", repeats=2).jobs
    first.axes["extra"] = 1
    assert "extra" not in second.axes


def test_int_and_float_seconds_are_normalised_to_strings() -> None:
    plan = expand(prompt="p", seconds=[4, 8.0, "12"])  # type: ignore[list-item]
    assert [job.seconds for job in plan.jobs] == ["4", "8", "12"]
    assert [job.axes["seconds"] for job in plan.jobs] == ["4", "8", "12"]


def test_seconds_not_allowed_is_an_invalid_combo_not_a_crash() -> None:
    plan = expand(prompt="p", seconds=[4, 5])
    assert [job.seconds for job in plan.jobs] == ["4"]
    (bad,) = plan.invalid
    assert bad.field == "seconds"
    assert bad.axes["seconds"] == 5
    assert "'4'" in bad.message and "Fix" in bad.message
    assert bad.allowed == ("4", "8", "12")


def test_invalid_combos_are_listed_with_axes_and_reason_and_left_out_of_jobs() -> None:
    plan = expand(prompt=["p1", "p2"], model=["sora-2", "sora-2-pro"], size=["1280x720", "1792x1024"], repeats=3)
    assert {(job.model, job.size) for job in plan.jobs} == {
        ("sora-2", "1280x720"),
        ("sora-2-pro", "1280x720"),
        ("sora-2-pro", "1792x1024"),
    }
    assert len(plan.jobs) == 2 * 3 * 3
    # Listed once per combination, whatever `repeats` is.
    assert len(plan.invalid) == 2
    for bad, prompt in zip(plan.invalid, ["p1", "p2"], strict=True):
        assert bad.field == "size"
        assert bad.axes == {
            "prompt": prompt,
            "model": "sora-2",
            "size": "1792x1024",
            "seconds": "4",
            "style": None,
        }
        assert "sora-2-pro" in bad.message
        assert bad.allowed == ("720x1280", "1280x720")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(prompt=""), "prompt"),
        (dict(prompt="x" * 32001), "prompt"),
        (dict(prompt=42), "prompt"),
        (dict(prompt="p", model=[None]), "model"),
        (dict(prompt="p", model=""), "model"),
        (dict(prompt="p", size="big"), "size"),
        (dict(prompt="p", seconds=True), "seconds"),
        (dict(prompt="p", style="watercolour"), "style"),
        (dict(prompt="p", style=[3]), "style"),
    ],
)
def test_every_kind_of_rejection_becomes_an_invalid_combo(kwargs: dict[str, Any], field: str) -> None:
    plan = expand(**kwargs)
    assert plan.jobs == ()
    (bad,) = plan.invalid
    assert bad.field == field
    assert bad.message


def test_unknown_models_pass_through_and_strict_false_skips_the_tables() -> None:
    assert len(expand(prompt="p", model="my-gateway-model", size="1792x1024", seconds=7).jobs) == 1
    assert expand(prompt="p", model="sora-2", size="1792x1024").invalid
    loose = expand(prompt="p", model="sora-2", size="1792x1024", seconds=5, strict=False)
    assert [(job.size, job.seconds) for job in loose.jobs] == [("1792x1024", "5")]
    # Shape checks stay even when not strict.
    assert expand(prompt="p", size="big", strict=False).invalid[0].field == "size"


def test_input_reference_is_carried_to_every_job_unread() -> None:
    plan = expand(prompt=["p1", "p2"], input_reference=Path("refs") / "first.png")
    assert {job.input_reference for job in plan.jobs} == {str(Path("refs") / "first.png")}
    with pytest.raises(TypeError, match="input_reference"):
        expand(prompt="p", input_reference=b"\x89PNG")  # type: ignore[arg-type]


def test_duplicates_are_kept_as_given() -> None:
    assert len(expand(prompt=["p", "p"]).jobs) == 2


# --- description errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("axis", ["prompt", "model", "size", "seconds", "style"])
def test_empty_axis_is_a_value_error_naming_the_axis(axis: str) -> None:
    kwargs: dict[str, Any] = {"prompt": "p", axis: []}
    with pytest.raises(ValueError, match=rf"^{axis} is empty.*Fix"):
        expand(**kwargs)


def test_repeats_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="repeats=0"):
        expand(prompt="p", repeats=0)
    with pytest.raises(TypeError, match="repeats"):
        expand(prompt="p", repeats="2")  # type: ignore[arg-type]


def test_sets_and_mappings_are_refused_as_axes() -> None:
    with pytest.raises(TypeError, match=r"model is a set.*Fix: pass a list"):
        expand(prompt="p", model={"sora-2", "sora-2-pro"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="variables="):
        expand(prompt={"animal": "corgi"})  # type: ignore[arg-type]


def test_no_prompt_at_all_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no prompt"):
        expand(model="sora-2")


def test_generators_are_accepted_as_axes() -> None:
    assert len(expand(prompt=(f"p{i}" for i in range(3))).jobs) == 3  # type: ignore[arg-type]


# --- rows (zip mode) --------------------------------------------------------------------------------


def test_rows_give_exactly_those_jobs_with_defaults_for_missing_keys() -> None:
    plan = expand(
        rows=[
            {"prompt": "a corgi surfing", "model": "sora-2-pro", "size": "1792x1024", "seconds": 8},
            {"prompt": "a cat skiing"},
            {"style": "noir"},
        ],
        prompt="default prompt",
        seconds=12,
        size="1280x720",
        repeats=2,
    )
    assert [_key(job) for job in plan.jobs] == [
        ("a corgi surfing", "sora-2-pro", "1792x1024", "8", None, 0),
        ("a corgi surfing", "sora-2-pro", "1792x1024", "8", None, 1),
        ("a cat skiing", "sora-2", "1280x720", "12", None, 0),
        ("a cat skiing", "sora-2", "1280x720", "12", None, 1),
        ("default prompt", "sora-2", "1280x720", "12", "noir", 0),
        ("default prompt", "sora-2", "1280x720", "12", "noir", 1),
    ]
    assert plan.axes == ("prompt", "model", "size", "seconds", "style", "repeat")


def test_rows_are_validated_like_the_grid() -> None:
    plan = expand(rows=[{"prompt": "p", "size": "1792x1024"}, {"prompt": "q"}])
    assert [job.prompt for job in plan.jobs] == ["q"]
    assert plan.invalid[0].axes["prompt"] == "p"
    assert plan.invalid[0].field == "size"


def test_row_with_unknown_key_names_the_key_and_the_allowed_keys() -> None:
    with pytest.raises(ValueError) as info:
        expand(rows=[{"prompt": "p"}, {"prompt": "q", "modle": "sora-2"}])
    message = str(info.value)
    assert "rows[1]" in message and "'modle'" in message
    assert "did you mean 'model'" in message
    assert "Allowed keys: prompt, model, size, seconds, style, input_reference" in message


def test_row_input_reference_overrides_the_default() -> None:
    plan = expand(rows=[{"prompt": "p", "input_reference": "a.png"}, {"prompt": "q"}], input_reference="b.png")
    assert [job.input_reference for job in plan.jobs] == ["a.png", "b.png"]


def test_rows_need_single_defaults_and_a_prompt() -> None:
    with pytest.raises(ValueError, match=r"with rows=, model= .* one value, got 2"):
        expand(rows=[{"prompt": "p"}], model=["sora-2", "sora-2-pro"])
    assert len(expand(rows=[{"prompt": "p"}], model=["sora-2-pro"]).jobs) == 1
    with pytest.raises(ValueError, match=r"rows\[0\] has no prompt"):
        expand(rows=[{"model": "sora-2"}])
    with pytest.raises(ValueError, match="rows is empty"):
        expand(rows=[])
    with pytest.raises(TypeError, match=r"rows\[0\] must be a dict"):
        expand(rows=["a corgi"])  # type: ignore[list-item]


# --- templates --------------------------------------------------------------------------------------


def test_template_gives_one_prompt_per_combination_of_variables() -> None:
    plan = expand(
        template="a {animal} {action} at {time}",
        variables={"animal": ["corgi", "cat"], "action": ["surfing"], "time": ["dawn", "dusk"]},
        model=["sora-2", "sora-2-pro"],
    )
    assert len(plan.jobs) == 2 * 1 * 2 * 2
    assert [job.prompt for job in plan.jobs][::2] == [
        "a corgi surfing at dawn",
        "a corgi surfing at dusk",
        "a cat surfing at dawn",
        "a cat surfing at dusk",
    ]
    assert plan.axes == ("prompt", "animal", "action", "time", "model", "size", "seconds", "style", "repeat")
    first = plan.jobs[0]
    assert list(first.axes) == list(plan.axes)
    assert (first.axes["animal"], first.axes["action"], first.axes["time"]) == ("corgi", "surfing", "dawn")


def test_template_variable_order_follows_the_template() -> None:
    plan = expand(template="{b} {a}", variables={"a": [1, 2], "b": ["x"]})
    assert plan.axes[:3] == ("prompt", "b", "a")
    assert [job.prompt for job in plan.jobs] == ["x 1", "x 2"]


def test_template_can_use_the_jobs_own_axes() -> None:
    plan = expand(
        template="a {animal} in {style} style, {seconds} seconds on {model}",
        variables={"animal": ["corgi"]},
        style=["noir", "anime"],
        seconds=[4, 8.0],  # type: ignore[list-item]
    )
    assert [job.prompt for job in plan.jobs] == [
        "a corgi in noir style, 4 seconds on sora-2",
        "a corgi in anime style, 4 seconds on sora-2",
        "a corgi in noir style, 8 seconds on sora-2",
        "a corgi in anime style, 8 seconds on sora-2",
    ]
    # Axis placeholders are not extra columns.
    assert plan.axes == ("prompt", "animal", "model", "size", "seconds", "style", "repeat")
    assert expand(template="a corgi on {model}", model="sora-2-pro").jobs[0].prompt == "a corgi on sora-2-pro"


def test_template_format_specs_and_literal_braces() -> None:
    plan = expand(template="shot {n:02d} {{raw}}", variables={"n": [3]})
    assert plan.jobs[0].prompt == "shot 03 {raw}"
    assert plan.jobs[0].axes["n"] == 3


def test_placeholder_without_variable_names_both_and_the_fix() -> None:
    with pytest.raises(ValueError) as info:
        expand(template="a {animal} at {time}", variables={"animal": ["corgi"]})
    message = str(info.value)
    assert "{time}" in message and "'animal'" in message
    assert "variables={'time': [...]}" in message and "remove {time}" in message


def test_unused_variable_names_both_and_the_fix() -> None:
    with pytest.raises(ValueError) as info:
        expand(template="a {animal}", variables={"animal": ["corgi"], "mood": ["happy"]})
    message = str(info.value)
    assert "variables['mood']" in message and "{animal}" in message
    assert "add {mood} to the template" in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(template="a {animal}", prompt="p", variables={"animal": ["x"]}), "either prompt= or template="),
        (dict(prompt="p", variables={"animal": ["x"]}), "needs a template"),
        (dict(template="a {0}"), "plain names"),
        (dict(template="a {}"), "plain names"),
        (dict(template="a {x.y}", variables={"x": ["1"]}), "plain names"),
        (dict(template="a {prompt}"), "cannot be a placeholder"),
        (dict(template="a {repeat}"), "cannot be a placeholder"),
        (dict(template="a {model}", variables={"model": ["x"]}), "names an axis"),
        (dict(template="a {animal", variables={"animal": ["x"]}), "not a valid format string"),
        (dict(template="  "), "non-empty string"),
        (dict(template="a {animal}", variables={"animal": []}), r"variables\['animal'\] is empty"),
        (dict(template="shot {n:02d}", variables={"n": ["three"]}), "cannot be filled"),
    ],
)
def test_template_mistakes_are_value_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expand(**kwargs)


def test_template_with_rows_takes_values_from_rows_and_variables() -> None:
    plan = expand(
        template="a {animal} at {time}",
        variables={"time": ["dawn", "dusk"]},
        rows=[{"animal": "corgi", "model": "sora-2-pro"}, {"animal": "cat"}],
    )
    assert [(job.prompt, job.model) for job in plan.jobs] == [
        ("a corgi at dawn", "sora-2-pro"),
        ("a corgi at dusk", "sora-2-pro"),
        ("a cat at dawn", "sora-2"),
        ("a cat at dusk", "sora-2"),
    ]
    assert plan.axes[:3] == ("prompt", "animal", "time")
    with pytest.raises(ValueError, match=r"rows\[0\] gives no value for the template placeholder \{animal\}"):
        expand(template="a {animal}", rows=[{"model": "sora-2"}])
    with pytest.raises(ValueError, match="the prompt comes from template="):
        expand(template="a {animal}", rows=[{"animal": "corgi", "prompt": "p"}])
    with pytest.raises(ValueError, match="already takes its values from variables="):
        expand(template="a {animal}", variables={"animal": ["cat"]}, rows=[{"animal": "corgi"}])


def test_template_filled_prompts_are_validated() -> None:
    plan = expand(template="{word}", variables={"word": ["ok", "  "]})
    assert [job.prompt for job in plan.jobs] == ["ok"]
    assert plan.invalid[0].field == "prompt"
    assert plan.invalid[0].axes["word"] == "  "


# --- styles -----------------------------------------------------------------------------------------


def test_style_is_kept_apart_from_the_prompt() -> None:
    plan = expand(prompt="a corgi surfing", style=[None, "noir", ""])
    assert [job.prompt for job in plan.jobs] == ["a corgi surfing"] * 3
    assert [job.style for job in plan.jobs] == [None, "noir", None]
    assert [job.axes["style"] for job in plan.jobs] == [None, "noir", None]
    assert [job.axes["prompt"] for job in plan.jobs] == ["a corgi surfing"] * 3


def test_unknown_style_is_an_invalid_combo_listing_the_presets() -> None:
    plan = expand(prompt="p", style=["noir", "watercolour"])
    assert [job.style for job in plan.jobs] == ["noir"]
    (bad,) = plan.invalid
    assert bad.field == "style" and bad.axes["style"] == "watercolour"
    assert bad.allowed == tuple(STYLES)


def test_styled_prompt_must_still_fit_the_limit() -> None:
    prompt = "x" * 31990
    plan = expand(prompt=prompt, style=[None, "noir"])
    assert [job.style for job in plan.jobs] == [None]
    assert plan.invalid[0].field == "prompt"


# --- capabilities -----------------------------------------------------------------------------------


def test_capabilities_are_all_a_sweep_checks_against() -> None:
    caps = Capabilities(models={"veo-3": ModelSpec(("1280x720",), ("4", "6", "8")), "sora-2": ModelSpec(None, ("4",))},
                        default_model="veo-3")
    plan = expand(
        prompt="p",
        model=["veo-3", "sora-2"],
        size=["1280x720", "1792x1024"],
        seconds=[6, 8],
        capabilities=caps,
    )
    assert [(job.model, job.size, job.seconds) for job in plan.jobs] == [
        ("veo-3", "1280x720", "6"),
        ("veo-3", "1280x720", "8"),
    ]
    fields = [(bad.axes["model"], bad.axes["size"], bad.axes["seconds"], bad.field) for bad in plan.invalid]
    assert fields == [
        ("veo-3", "1792x1024", 6, "size"),
        ("veo-3", "1792x1024", 8, "size"),
        ("sora-2", "1280x720", 6, "seconds"),
        ("sora-2", "1280x720", 8, "seconds"),
        ("sora-2", "1792x1024", 6, "seconds"),
        ("sora-2", "1792x1024", 8, "seconds"),
    ]
    assert "not allowed for veo-3" in plan.invalid[0].message
    # A model these capabilities do not list is refused (they list every model); nothing known: nothing checked.
    (bad,) = expand(prompt="p", model="sora-2-pro", size="1792x1024", capabilities=caps).invalid
    assert bad.field == "model" and bad.allowed == ("veo-3", "sora-2")
    assert expand(prompt="p", size="1000x1000", seconds=7, capabilities=Capabilities(None, "m")).jobs
    # Axes not given take each model's defaults.
    assert [(j.size, j.seconds) for j in expand(prompt="p", capabilities=caps).jobs] == [("1280x720", "4")]


# --- estimate ---------------------------------------------------------------------------------------


def test_estimate_against_contract_prices() -> None:
    two = estimate(expand(prompt=["p1", "p2"], model="sora-2", seconds=4, size="720x1280"))
    assert two.jobs == 2 and two.invalid == 0
    assert two.seconds_generated == 8
    assert two.cost_usd == pytest.approx(0.80)
    assert two.known_cost_usd == pytest.approx(0.80)
    assert two.unknown_cost_jobs == 0
    pro = estimate(expand(prompt="p", model="sora-2-pro", size="1792x1024", seconds=8))
    assert pro.cost_usd == pytest.approx(4.00)


def test_estimate_of_the_24_job_grid_by_model() -> None:
    est = estimate(_grid())
    assert (est.jobs, est.seconds_generated) == (24, 144)
    assert est.cost_usd == pytest.approx(3 * 2 * (12 * 0.10 + 12 * 0.30))
    assert est.by_model == {
        "sora-2": {"jobs": 12, "seconds": 72.0, "cost_usd": pytest.approx(7.2)},
        "sora-2-pro": {"jobs": 12, "seconds": 72.0, "cost_usd": pytest.approx(21.6)},
    }
    assert str(est) == "24 jobs, 144 s of video, est. $28.80"


def test_estimate_counts_invalid_combos_but_never_their_cost() -> None:
    est = estimate(expand(prompt="p", model=["sora-2", "sora-2-pro"], size="1792x1024", seconds=8))
    assert (est.jobs, est.invalid) == (1, 1)
    assert est.cost_usd == pytest.approx(4.0)
    assert str(est) == "1 job (1 invalid), 8 s of video, est. $4.00"


def test_unknown_price_makes_cost_none_and_keeps_the_known_part() -> None:
    est = estimate(expand(prompt="p", model=["sora-2", "my-model"], seconds=8, repeats=2))
    assert est.cost_usd is None
    assert est.known_cost_usd == pytest.approx(1.6)
    assert est.unknown_cost_jobs == 2
    assert est.seconds_generated == 32
    assert est.by_model["my-model"] == {"jobs": 2, "seconds": 16.0, "cost_usd": None}
    assert est.by_model["sora-2"]["cost_usd"] == pytest.approx(1.6)
    assert str(est) == "4 jobs, 32 s of video, est. $1.60 for 2 jobs + unknown for 2"
    only_unknown = estimate(expand(prompt="p", model="my-model"))
    assert only_unknown.cost_usd is None and only_unknown.known_cost_usd == 0
    assert str(only_unknown) == "1 job, 4 s of video, est. cost unknown"


def test_estimate_takes_the_servers_prices_and_tolerates_odd_durations() -> None:
    plan = expand(prompt="p", model="gw", seconds=["4", "long"], strict=False)
    est = estimate(plan, capabilities=Capabilities({"gw": ModelSpec(usd_per_second=1.0)}, "gw"))
    assert est.jobs == 2
    assert est.seconds_generated == 4
    assert est.cost_usd is None and est.known_cost_usd == pytest.approx(4.0)


def test_estimate_of_an_empty_plan() -> None:
    est = estimate(expand(prompt="p", size="bad"))
    assert (est.jobs, est.invalid, est.cost_usd, est.by_model) == (0, 1, 0.0, {})


def test_estimate_html_is_a_table_with_escaped_user_text() -> None:
    plan = expand(prompt="<b>p</b>", model=["sora-2", "<script>x</script>"], size=["720x1280", "<i>"])
    page = estimate(plan)._repr_html_()
    assert "<table" in page and ">sora-2</td>" in page
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<i>" not in page and "<b>" not in page
    assert "2 invalid" in page


def test_estimate_is_an_estimate_dataclass_value() -> None:
    est = estimate(_grid())
    assert isinstance(est, Estimate)
    assert est == estimate(_grid())


# --- budget -----------------------------------------------------------------------------------------


def test_budget_refusal_gives_estimate_budget_and_fix() -> None:
    est = estimate(_grid())  # $28.80
    check_budget(est, None)
    check_budget(est, 28.80)
    check_budget(est, 100)
    with pytest.raises(BudgetExceededError) as info:
        check_budget(est, 20.0)
    message = str(info.value)
    assert "$28.80" in message and "$20.00" in message and "24 jobs" in message
    assert "raise budget_usd=28.80 or more, or remove jobs" in message
    assert info.value.estimate is est and info.value.budget_usd == 20.0
    assert isinstance(info.value, SoraError) and isinstance(info.value, ValueError)


def test_budget_with_unknown_prices_refuses_only_on_the_known_part() -> None:
    est = estimate(expand(prompt="p", model=["sora-2", "my-model"], seconds=8))  # $0.80 known + unknown
    check_budget(est, 1.0)
    with pytest.raises(BudgetExceededError) as info:
        check_budget(est, 0.5)
    message = str(info.value)
    assert "known part" in message and "$0.80" in message and "$0.50" in message
    assert "unknown" in message and "1 job" in message
    assert "raise budget_usd=0.80" in message


def test_budget_must_be_a_non_negative_number() -> None:
    est = estimate(expand(prompt="p"))
    with pytest.raises(ValueError, match="negative"):
        check_budget(est, -1)
    with pytest.raises(TypeError, match="budget_usd"):
        check_budget(est, "20")  # type: ignore[arg-type]


# --- sweep files ------------------------------------------------------------------------------------

YAML_SWEEP = """\
# two animals x two times x two models x two durations
template: "a {animal} surfing at {time}, in {style} style"
variables:
  animal: [corgi, cat]
  time: [dawn, dusk]
model: [sora-2, sora-2-pro]
seconds: [4, 8]
size: 1280x720
style: cinematic
budget_usd: 20
max_concurrency: 4
"""


def test_yaml_sweep_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(YAML_SWEEP, encoding="utf-8")
    spec = load_sweep_file(path)
    assert spec.pop("run") == {"budget_usd": 20, "max_concurrency": 4}
    plan = expand(**spec)
    assert len(plan.jobs) == 16
    assert plan.jobs[0].prompt == "a corgi surfing at dawn, in cinematic style"
    assert plan.jobs[0].seconds == "4"


def test_json_sweep_file_with_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    data = {
        "rows": [{"prompt": "a corgi surfing", "model": "sora-2-pro", "size": "1792x1024"}, {"prompt": "a cat"}],
        "repeats": 2,
        "run_dir": "runs/a",
        "profile": "simulator",
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    spec = load_sweep_file(str(path))
    assert spec["run"] == {"run_dir": "runs/a", "profile": "simulator"}
    run = spec.pop("run")
    assert run["profile"] == "simulator"
    assert len(expand(**spec).jobs) == 4


def test_sweep_file_without_run_options_has_an_empty_run(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("prompt: a corgi\n", encoding="utf-8")
    assert load_sweep_file(path) == {"prompt": "a corgi", "run": {}}


def test_sweep_file_unknown_key_names_it_and_the_allowed_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("prompt: a corgi\nmodels: [sora-2]\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_sweep_file(path)
    message = str(info.value)
    assert "unknown key 'models'" in message and "did you mean 'model'" in message
    assert "Allowed keys: prompt, model, size, seconds" in message and "budget_usd" in message


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("s.txt", "prompt: p", "Fix: use a .yaml, .yml or .json file"),
        ("s.yaml", "- a\n- b\n", "one mapping"),
        ("s.yaml", "", "one mapping"),
        ("s.yaml", "prompt: [unclosed\n", "not valid YAML"),
        ("s.json", "{bad", "not valid JSON"),
        ("s.json", '{"prompt": "p", "max_concurrency": 0}', "max_concurrency"),
        ("s.json", '{"prompt": "p", "budget_usd": "lots"}', "budget_usd"),
        ("s.json", '{"prompt": "p", "base_url": 4}', "base_url must be a string"),
    ],
)
def test_bad_sweep_files(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_sweep_file(path)


def test_yaml_without_pyyaml_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("prompt: p\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match=r'pip install "sora-nb\[yaml\]"'):
        load_sweep_file(path)
    json_path = tmp_path / "s.json"
    json_path.write_text('{"prompt": "p"}', encoding="utf-8")
    assert load_sweep_file(json_path)["prompt"] == "p"


# --- scale ------------------------------------------------------------------------------------------


def test_ten_thousand_combinations_expand_and_estimate() -> None:
    plan = expand(
        template="shot {n} of a {animal}",
        variables={"n": range(250), "animal": ["corgi", "cat"]},
        model=["sora-2", "sora-2-pro"],
        size=["720x1280", "1280x720", "1024x1792", "1792x1024", "640x480"],
        seconds=[4, 8],
    )
    combos = 250 * 2 * 2 * 5 * 2
    assert combos == 10_000
    # sora-2 takes 2 of the 4 contract sizes, sora-2-pro 4; 640x480 fits neither.
    assert len(plan.jobs) == 500 * 2 * (2 + 4)
    assert len(plan.jobs) + len(plan.invalid) == combos
    est = estimate(plan)
    assert est.jobs == 6000 and est.invalid == 4000
    assert est.cost_usd == pytest.approx(500 * (2 * 12 * 0.10 + 2 * 12 * 0.30 + 2 * 12 * 0.50))


def test_validation_error_type_is_reused_from_the_error_tree() -> None:
    # Invalid combos come from the same checks as single requests.
    from sora_nb._validation import check_size

    with pytest.raises(ValidationError) as info:
        check_size("1792x1024", "sora-2")
    assert expand(prompt="p", size="1792x1024").invalid[0].message == str(info.value)
