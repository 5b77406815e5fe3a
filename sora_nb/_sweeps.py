"""Parameter sweeps, the pure part: grid expansion, cost estimates, budgets and sweep files.

Nothing here sends a request, sleeps or writes a file; the runner turns a :class:`SweepPlan` into
jobs. A sweep is described once and expanded into :class:`~sora_nb._types.JobSpec` objects, each with
its coordinates in ``axes`` (the DataFrame columns of the results).

Three ways to describe a sweep, which combine:

* **Grid** (the default): every combination of ``prompt × model × size × seconds × style``, each
  ``repeats`` times. A single value counts as a one-value axis.
* **Rows**: ``rows=[{"prompt": ..., "model": ...}, ...]`` gives exactly those combinations; keys a row
  leaves out take the single values passed alongside.
* **Template**: ``template="a {animal} at {time}"`` with ``variables={"animal": [...], "time": [...]}``
  makes one prompt per combination of the variables. A placeholder may also name ``model``, ``size``,
  ``seconds`` or ``style``, filled from the job's own values.

Combinations the server would reject (``sora-2`` at ``1792x1024``, an unknown style, ``seconds=5``)
are not errors: they are listed in :attr:`SweepPlan.invalid` with the reason, so that one typo does
not hide the rest of the grid. Mistakes in the description itself (an empty axis, a template
placeholder without values, an unknown row key) raise ``ValueError``/``TypeError`` at once.
"""

from __future__ import annotations

import difflib
import html
import itertools
import json
import math
import os
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import _catalog
from ._catalog import price_per_second
from ._errors import SoraError, ValidationError
from ._styles import apply_style
from ._types import JobSpec
from ._validation import check_create, check_prompt

__all__ = [
    "BudgetExceededError",
    "Capabilities",
    "Estimate",
    "InvalidCombo",
    "SweepPlan",
    "MAX_SWEEP_JOBS",
    "check_axis_names",
    "check_budget",
    "estimate",
    "expand",
    "load_sweep_file",
]

_GRID_AXES = ("model", "size", "seconds", "style")
"""The axes besides ``prompt``, in expansion order; a template may also use them as placeholders."""

_ROW_KEYS = ("prompt", "model", "size", "seconds", "style", "input_reference")
_RESERVED_PLACEHOLDERS = ("prompt", "repeat", "input_reference")

_EXPAND_KEYS = (
    "prompt", "model", "size", "seconds", "style", "repeats", "input_reference",
    "template", "variables", "rows", "strict", "max_jobs",
)  # fmt: skip
MAX_SWEEP_JOBS = 10_000
"""The default cap on a sweep's combinations (``max_jobs=``), checked before any job is made."""
_RUN_KEYS = ("max_concurrency", "budget_usd", "run_dir", "profile", "base_url")


class BudgetExceededError(SoraError, ValueError):
    """A sweep's estimated cost is over ``budget_usd``; nothing was sent.

    ``estimate`` is the :class:`Estimate` and ``budget_usd`` the budget it was checked against.
    """

    def __init__(self, message: str, *, estimate: Estimate, budget_usd: float) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.budget_usd = budget_usd


class Capabilities(Protocol):
    """What a server accepts, for servers whose models differ from the built-in catalog.

    ``models`` maps a model name to ``(sizes, seconds)``: the values that model accepts, or ``None``
    for "not known, do not check". A model listed here is checked against these values instead of
    the catalog; other models follow the catalog rules. ``models`` itself may be ``None`` (nothing
    known: the catalog rules apply). Any object with such an attribute will do, e.g. a frozen dataclass.
    """

    @property
    def models(self) -> Mapping[str, tuple[Sequence[str] | None, Sequence[str] | None]] | None: ...


@dataclass(frozen=True)
class InvalidCombo:
    """A combination that would be rejected: its coordinates, the offending field and why.

    ``axes`` has the same keys as a job's, without ``repeat`` (a combination is listed once, whatever
    ``repeats`` is); the values are as given. ``allowed`` lists the accepted values when known.
    """

    axes: dict[str, Any]
    field: str
    message: str
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SweepPlan:
    """The expansion of a sweep: the valid jobs in a stable order, and the rejected combinations.

    ``jobs`` are ordered prompt-major (template variables in placeholder order), then model, size,
    seconds, style and repeat; in rows mode, row-major. ``axes`` names the keys of every job's
    ``axes``, in column order: ``prompt``, the template variables, ``model``, ``size``, ``seconds``,
    ``style``, ``repeat``.
    """

    jobs: tuple[JobSpec, ...]
    invalid: tuple[InvalidCombo, ...]
    axes: tuple[str, ...]


@dataclass(frozen=True)
class Estimate:
    """What a sweep will generate and cost, before anything is sent.

    ``cost_usd`` is ``None`` as soon as one job's price is unknown (a gateway's own model): an
    unknown price is never counted as zero. ``known_cost_usd`` is then the cost of the jobs whose
    price is known, and ``unknown_cost_jobs`` how many are left out of it. ``by_model`` gives
    ``{"jobs", "seconds", "cost_usd"}`` per model (``cost_usd`` ``None`` where unknown).
    ``seconds_generated`` counts only durations that are numbers (a gateway may take others).

    >>> est = estimate(expand(prompt="a corgi surfing", seconds=[4, 8]))
    >>> print(est)
    2 jobs, 12 s of video, est. $1.20
    """

    jobs: int
    invalid: int
    seconds_generated: float
    cost_usd: float | None
    known_cost_usd: float
    unknown_cost_jobs: int
    by_model: dict[str, dict[str, float | int | None]]
    invalid_combos: tuple[InvalidCombo, ...] = ()

    def __str__(self) -> str:
        parts = [_plural(self.jobs, "job")]
        if self.invalid:
            parts[0] += f" ({self.invalid} invalid)"
        parts.append(f"{_format_seconds(self.seconds_generated)} of video")
        if self.cost_usd is not None:
            parts.append(f"est. ${self.cost_usd:,.2f}")
        elif self.unknown_cost_jobs == self.jobs:
            parts.append("est. cost unknown")
        else:
            known = self.jobs - self.unknown_cost_jobs
            parts.append(
                f"est. ${self.known_cost_usd:,.2f} for {_plural(known, 'job')} + unknown for {self.unknown_cost_jobs}"
            )
        return ", ".join(parts)

    def _repr_html_(self) -> str:
        return f"<div class='sora-nb-estimate'><p>{html.escape(str(self))}</p>{self.details_html()}</div>"

    def details_html(self) -> str:
        """The per-model table and the invalid combinations, without the summary line."""
        rows = []
        for model, figures in self.by_model.items():
            cost = figures["cost_usd"]
            rows.append(
                "<tr>"
                f"<td>{html.escape(model)}</td>"
                f"<td style='text-align:right'>{figures['jobs']}</td>"
                f"<td style='text-align:right'>{_format_seconds(float(figures['seconds'] or 0))}</td>"
                f"<td style='text-align:right'>{'unknown' if cost is None else f'${cost:,.2f}'}</td>"
                "</tr>"
            )
        table = (
            "<table><thead><tr><th>model</th><th>jobs</th><th>video</th><th>est. cost</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        invalid = ""
        if self.invalid_combos:
            shown = self.invalid_combos[:10]
            items = "".join(
                f"<li>{html.escape(_describe_axes(combo.axes))}: {html.escape(combo.message)}</li>" for combo in shown
            )
            more = len(self.invalid_combos) - len(shown)
            if more:
                items += f"<li>… and {more} more</li>"
            invalid = f"<details><summary>{self.invalid} invalid (not sent)</summary><ul>{items}</ul></details>"
        return table + invalid


def expand(
    *,
    prompt: str | Sequence[str] | None = None,
    model: str | Sequence[str] = _catalog.DEFAULT_MODEL,
    size: str | Sequence[str] = _catalog.DEFAULT_SIZE,
    seconds: str | int | Sequence[str | int] = _catalog.DEFAULT_SECONDS,
    style: str | Sequence[str | None] | None = None,
    repeats: int = 1,
    input_reference: str | os.PathLike[str] | None = None,
    template: str | None = None,
    variables: Mapping[str, Any] | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    strict: bool = True,
    capabilities: Capabilities | None = None,
    max_jobs: int = MAX_SWEEP_JOBS,
) -> SweepPlan:
    """Expand a sweep description into jobs, setting aside the combinations a server would reject.

    Args:
        prompt: One prompt or a list. Not needed when ``template`` or every row gives one.
        model, size, seconds, style: One value or a list each; ``seconds`` may be ints (``4`` -> ``"4"``).
            ``style`` is a preset name of ``sora_nb._styles.STYLES`` or ``None``; it is applied to the
            prompt when the request is built, so ``JobSpec.prompt`` stays the prompt as written.
        repeats: How many times to run each combination (``axes["repeat"]`` is 0-based).
        input_reference: A reference image path for every job (not read here).
        template: A prompt with ``{placeholders}``, instead of ``prompt``. ``{model}``, ``{size}``,
            ``{seconds}`` and ``{style}`` are filled from each job's own values (``{style}`` is empty
            for no style); variables are placed in placeholder order, the first one varying slowest.
        variables: The values of each template placeholder that is not an axis name.
        rows: Exact combinations instead of a grid; the axis arguments are then single defaults.
        strict: ``False`` skips the model tables (a gateway's own models), keeping the shape checks.
        capabilities: What the server accepts, when it differs from the catalog (see :class:`Capabilities`).
        max_jobs: The most combinations a sweep may have, counted before any is made (a typo such as
            ``repeats=100000`` must not fill the memory); raise it for a sweep that big on purpose.

    Raises:
        ValueError: An empty axis, ``repeats < 1``, a template placeholder without values, a variable
            the template does not use, an unknown row key, or conflicting arguments.
        TypeError: An axis or row of the wrong kind (e.g. a set, whose order is not stable).

    >>> plan = expand(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"],
    ...               size="1792x1024", seconds=[4, 8])
    >>> len(plan.jobs), len(plan.invalid), plan.invalid[0].field
    (4, 4, 'size')
    >>> plan = expand(template="a {animal} at {time}", variables={"animal": ["corgi", "cat"], "time": ["dawn"]})
    >>> [job.prompt for job in plan.jobs], plan.axes
    (['a corgi at dawn', 'a cat at dawn'], ('prompt', 'animal', 'time', 'model', 'size', 'seconds', 'style', 'repeat'))
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int):
        raise TypeError(f"repeats must be an int, got {type(repeats).__name__}. Fix: e.g. repeats=2.")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} is less than 1. Fix: pass repeats=1 or more.")
    if template is not None and prompt is not None:
        raise ValueError(
            "pass either prompt= or template=, not both. Fix: drop prompt=, or write the prompt as "
            "template='... {name} ...' with variables={'name': [...]}."
        )
    if variables is not None and template is None:
        raise ValueError(
            f"variables={dict(variables)!r} needs a template to fill. "
            "Fix: pass template='... {name} ...' using each variable, or drop variables=."
        )
    reference = _check_reference(input_reference, "input_reference")
    placeholders = _placeholders(template) if template is not None else []
    var_names = [name for name in placeholders if name not in _GRID_AXES]
    var_values = _variable_values(template, var_names, variables, rows_mode=rows is not None)
    context = _Context(
        template=template,
        var_names=var_names,
        uses_axes=any(name in _GRID_AXES for name in placeholders),
        strict=strict,
        capabilities=capabilities.models if capabilities is not None else None,
        repeats=repeats,
    )
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
        raise ValueError(f"max_jobs={max_jobs!r} must be a whole number of 1 or more. Fix: e.g. max_jobs=50_000.")
    if rows is not None:
        if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes, Mapping)):
            raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}. Fix: rows=[{{'prompt': ...}}].")
        _check_size(len(rows) * repeats, max_jobs)
        context.expand_rows(
            rows,
            var_values,
            defaults={"prompt": prompt, "model": model, "size": size, "seconds": seconds, "style": style},
            reference=reference,
        )
    else:
        if template is None and prompt is None:
            raise ValueError(
                "nothing to generate: no prompt. Fix: pass prompt='...' (or a list), "
                "template='...' with variables=, or rows=[{'prompt': ...}, ...]."
            )
        prompts = [None] if template is not None else _axis_values("prompt", prompt)
        grid = [
            _axis_values(name, value) for name, value in zip(_GRID_AXES, (model, size, seconds, style), strict=True)
        ]
        _check_size(math.prod(len(v) for v in (prompts, *(var_values[n] for n in var_names), *grid)) * repeats,
                    max_jobs)
        for text in prompts:
            for variable_combo in _combinations(var_names, var_values):
                for values in itertools.product(*grid):
                    context.add(text, variable_combo, *values, reference=reference)
    axes = ("prompt", *var_names, *_GRID_AXES, "repeat")
    return SweepPlan(jobs=tuple(context.jobs), invalid=tuple(context.invalid), axes=axes)


def _check_size(jobs: int, max_jobs: int) -> None:
    """Refuse a sweep bigger than ``max_jobs`` before a single job of it is made."""
    if jobs > max_jobs:
        raise ValueError(
            f"this sweep has {jobs:,} combinations, over the cap of max_jobs={max_jobs:,}. Fix: narrow the axes "
            f"(or repeats=), or pass max_jobs={jobs} to sweep(...) if you mean to run that many."
        )


def check_axis_names(axes: Mapping[str, Any]) -> None:
    """Refuse a sweep argument that is not an axis or an option of :func:`expand` (``modle=`` for ``model=``).

    >>> check_axis_names({"prompt": "a cat", "modle": "sora-2"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: sweep() has no argument 'modle' (did you mean 'model'?). Allowed: prompt, model, ...
    """
    allowed = list(_EXPAND_KEYS)
    for name in axes:
        if name not in allowed:
            raise TypeError(
                f"sweep() has no argument {name!r}{_did_you_mean(name, allowed)}. Allowed: {', '.join(allowed)}. "
                "Fix: use one of them (a template's own placeholders go in variables={...})."
            )


def estimate(plan: SweepPlan, *, price: Callable[[str, str], float | None] = price_per_second) -> Estimate:
    """Count the jobs, generated seconds and cost of a plan (``price`` is USD per second by model, size).

    >>> est = estimate(expand(prompt="a corgi", model=["sora-2", "my-model"], strict=False))
    >>> est.cost_usd is None, est.known_cost_usd, est.unknown_cost_jobs
    (True, 0.4, 1)
    """
    prices: dict[tuple[str, str], float | None] = {}
    by_model: dict[str, dict[str, float | int | None]] = {}
    total_seconds = 0.0
    known_cost = 0.0
    unknown = 0
    for job in plan.jobs:
        key = (job.model, job.size)
        if key not in prices:
            prices[key] = price(job.model, job.size)
        duration = _duration(job.seconds)
        rate = prices[key]
        cost = None if rate is None or duration is None else rate * duration
        figures = by_model.setdefault(job.model, {"jobs": 0, "seconds": 0.0, "cost_usd": 0.0})
        figures["jobs"] = int(figures["jobs"] or 0) + 1
        if duration is not None:
            total_seconds += duration
            figures["seconds"] = float(figures["seconds"] or 0.0) + duration
        if cost is None:
            unknown += 1
            figures["cost_usd"] = None
        else:
            known_cost += cost
            if figures["cost_usd"] is not None:
                figures["cost_usd"] = float(figures["cost_usd"]) + cost
    for figures in by_model.values():
        if figures["cost_usd"] is not None:
            figures["cost_usd"] = _money(float(figures["cost_usd"]))
    return Estimate(
        jobs=len(plan.jobs),
        invalid=len(plan.invalid),
        seconds_generated=total_seconds,
        cost_usd=None if unknown else _money(known_cost),
        known_cost_usd=_money(known_cost),
        unknown_cost_jobs=unknown,
        by_model=by_model,
        invalid_combos=plan.invalid,
    )


def check_budget(estimate: Estimate, budget_usd: float | None) -> None:
    """Refuse a sweep whose estimated cost is over ``budget_usd`` (``None``: no budget, no check).

    When some prices are unknown, only the known part can be checked: the sweep is refused when that
    part alone is over the budget, and the message says the real cost may be higher.

    >>> try:
    ...     check_budget(estimate(expand(prompt="a corgi", seconds=8)), budget_usd=0.5)
    ... except BudgetExceededError as exc:
    ...     print(str(exc).split(". ")[0])
    Estimated cost $0.80 is over the budget of $0.50 (1 job, 8 s of video)
    """
    if budget_usd is None:
        return
    if isinstance(budget_usd, bool) or not isinstance(budget_usd, (int, float)):
        raise TypeError(f"budget_usd must be a number of US dollars, got {budget_usd!r}. Fix: e.g. budget_usd=20.0.")
    if math.isnan(budget_usd) or budget_usd < 0:
        raise ValueError(
            f"budget_usd={budget_usd} is {'not a number' if math.isnan(budget_usd) else 'negative'}. "
            "Allowed: 0 or more US dollars, or None for no budget. "
            "Fix: e.g. budget_usd=20.0."
        )
    spend = estimate.cost_usd if estimate.cost_usd is not None else estimate.known_cost_usd
    # A cent's float noise must not refuse a sweep that costs exactly the budget.
    if spend <= budget_usd + 1e-9:
        return
    size = f"{_plural(estimate.jobs, 'job')}, {_format_seconds(estimate.seconds_generated)} of video"
    if estimate.cost_usd is not None:
        message = f"Estimated cost ${spend:,.2f} is over the budget of ${budget_usd:,.2f} ({size}). "
    else:
        message = (
            f"The known part of the estimated cost, ${spend:,.2f}, is already over the budget of "
            f"${budget_usd:,.2f} ({size}); the price of {_plural(estimate.unknown_cost_jobs, 'job')} is "
            "unknown, so the real cost is higher. "
        )
    message += f"Fix: raise budget_usd={_ceil_cents(spend)} or more, or remove jobs from the sweep."
    raise BudgetExceededError(message, estimate=estimate, budget_usd=float(budget_usd))


def load_sweep_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sweep file (``.yaml``, ``.yml`` or ``.json``) into ``expand()`` arguments plus run options.

    The file is one mapping. Its keys are the arguments of :func:`expand` (``prompt``, ``model``,
    ``size``, ``seconds``, ``style``, ``repeats``, ``input_reference``, ``template``, ``variables``,
    ``rows``, ``strict``) and, optionally, how to run it: ``max_concurrency``, ``budget_usd``,
    ``run_dir``, ``profile``, ``base_url``. Relative paths are kept as written (relative to the
    current directory, like command-line options). An example::

        # grid.yaml: 2 animals x 2 times x 2 models x 2 durations = 16 jobs
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

    Rows instead of a grid::

        rows:
          - {prompt: "a corgi surfing", model: sora-2-pro, size: 1792x1024}
          - {prompt: "a cat skiing", seconds: 8}

    Returns:
        The ``expand()`` keyword arguments, plus the key ``"run"``: a dict of the run options given
        (possibly empty). Use it as ``spec = load_sweep_file(p); run = spec.pop("run"); expand(**spec)``.

    Raises:
        ValueError: An unknown suffix or key, a file that is not one mapping, or a run option of the
            wrong type.
        ImportError: A YAML file without PyYAML installed (``pip install "sora-nb[yaml]"``).
        OSError: The file cannot be read.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(
            f"sweep file {str(file)!r} has suffix {file.suffix or '(none)'!r}. Fix: use a .yaml, .yml or .json file."
        )
    text = file.read_text(encoding="utf-8")
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"sweep file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}. Fix: correct the file (or write it as YAML)."
            ) from None
    else:
        try:
            import yaml
        except ImportError:
            raise ImportError(
                f'Reading the YAML sweep file {str(file)!r} needs PyYAML. Fix: pip install "sora-nb[yaml]" '
                "(or write the sweep as .json)."
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"sweep file {str(file)!r} is not valid YAML: {exc}. Fix: correct the file.") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"sweep file {str(file)!r} must hold one mapping of settings (e.g. 'prompt: ...'), "
            f"got {type(data).__name__}. Fix: see the example in sora_nb.load_sweep_file's documentation."
        )
    allowed = (*_EXPAND_KEYS, *_RUN_KEYS)
    spec: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for key, value in data.items():
        if key in _RUN_KEYS:
            run[key] = _check_run_option(key, value, file)
        elif key in _EXPAND_KEYS:
            spec[key] = value
        else:
            raise ValueError(
                f"sweep file {str(file)!r} has unknown key {key!r}{_did_you_mean(key, allowed)}. "
                f"Allowed keys: {', '.join(allowed)}."
            )
    spec["run"] = run
    return spec


# --- expansion -------------------------------------------------------------------------------


class _Context:
    """The fixed settings of one expansion, and the jobs and invalid combinations it has made so far."""

    def __init__(
        self,
        *,
        template: str | None,
        var_names: list[str],
        uses_axes: bool,
        strict: bool,
        capabilities: Mapping[str, tuple[Sequence[str] | None, Sequence[str] | None]] | None,
        repeats: int,
    ) -> None:
        self.template = template
        self.var_names = var_names
        self.uses_axes = uses_axes
        self.strict = strict
        self.capabilities = capabilities
        self.repeats = repeats
        self.jobs: list[JobSpec] = []
        self.invalid: list[InvalidCombo] = []
        self._filled: dict[tuple[Any, ...], str] = {}

    def add(
        self,
        prompt: Any,
        variables: dict[str, Any],
        model: Any,
        size: Any,
        seconds: Any,
        style: Any,
        *,
        reference: str | None,
    ) -> None:
        """Validate one combination; record it as ``repeats`` jobs, or once as invalid."""
        if style == "":
            style = None
        if self.template is not None:
            prompt = self._fill(variables, model, size, seconds, style)
        try:
            checked = self._check(prompt, model, size, seconds, style)
        except ValidationError as exc:
            axes = {"prompt": prompt, **variables, "model": model, "size": size, "seconds": seconds, "style": style}
            self.invalid.append(InvalidCombo(axes=axes, field=exc.field, message=str(exc), allowed=exc.allowed))
            return
        size, seconds = checked
        for repeat in range(self.repeats):
            axes = {
                "prompt": prompt,
                **variables,
                "model": model,
                "size": size,
                "seconds": seconds,
                "style": style,
                "repeat": repeat,
            }
            self.jobs.append(
                JobSpec(
                    prompt=prompt,
                    model=model,
                    size=size,
                    seconds=seconds,
                    style=style,
                    input_reference=reference,
                    repeat=repeat,
                    axes=axes,
                )
            )

    def expand_rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        var_values: dict[str, list[Any]],
        *,
        defaults: dict[str, Any],
        reference: str | None,
    ) -> None:
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise TypeError(
                f"rows must be a list of dicts, got {type(rows).__name__}. "
                "Fix: rows=[{'prompt': 'a corgi surfing', 'model': 'sora-2'}, ...]."
            )
        rows = list(rows)
        if not rows:
            raise ValueError(
                "rows is empty: no jobs to run. Fix: pass at least one row, e.g. rows=[{'prompt': '...'}]."
            )
        single: dict[str, Any] = {}
        for name, value in defaults.items():
            if name == "prompt" and value is None:
                single[name] = None
                continue
            given = _axis_values(name, value)
            if len(given) != 1:
                raise ValueError(
                    f"with rows=, {name}= is the default for rows that leave it out, so it must be one value, "
                    f"got {len(given)}. Fix: put the varying values in the rows, or drop rows= for a grid."
                )
            single[name] = given[0]
        row_vars = [name for name in self.var_names if name not in var_values]
        allowed = [key for key in _ROW_KEYS if not (key == "prompt" and self.template is not None)] + row_vars
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(
                    f"rows[{index}] must be a dict, got {type(row).__name__}. Fix: e.g. {{'prompt': '...'}}."
                )
            for key in row:
                if key not in allowed:
                    extra = ""
                    if key == "prompt" and self.template is not None:
                        extra = " (the prompt comes from template=)"
                    elif key in var_values:
                        extra = f" ({key!r} already takes its values from variables=)"
                    raise ValueError(
                        f"rows[{index}] has unknown key {key!r}{extra}{_did_you_mean(key, allowed)}. "
                        f"Allowed keys: {', '.join(allowed)}."
                    )
            for name in row_vars:
                if name not in row:
                    raise ValueError(
                        f"rows[{index}] gives no value for the template placeholder {{{name}}}. "
                        f"Fix: add {name!r} to every row, or pass variables={{{name!r}: [...]}}."
                    )
            values = {name: row.get(name, single[name]) for name in single}
            if self.template is None and values["prompt"] is None:
                raise ValueError(
                    f"rows[{index}] has no prompt. Fix: add 'prompt' to each row, "
                    "or pass prompt='...' as the default for rows that leave it out."
                )
            row_reference = (
                _check_reference(row["input_reference"], f"rows[{index}]['input_reference']")
                if "input_reference" in row
                else reference
            )
            fixed = {name: row[name] for name in row_vars}
            for variable_combo in _combinations(list(var_values), var_values):
                merged = {**fixed, **variable_combo}
                ordered = {name: merged[name] for name in self.var_names}
                self.add(
                    values["prompt"],
                    ordered,
                    values["model"],
                    values["size"],
                    values["seconds"],
                    values["style"],
                    reference=row_reference,
                )

    def _fill(self, variables: dict[str, Any], model: Any, size: Any, seconds: Any, style: Any) -> str:
        assert self.template is not None
        try:
            key = (*variables.values(), model, size, seconds, style) if self.uses_axes else tuple(variables.values())
            cached = self._filled.get(key)
        except TypeError:  # an unhashable value: fill without the cache
            key, cached = None, None
        if cached is not None:
            return cached
        values = dict(variables)
        if self.uses_axes:
            values.update(model=model, size=size, seconds=_seconds_text(seconds), style="" if style is None else style)
        try:
            text = self.template.format_map(values)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"template {self.template!r} cannot be filled with {values!r}: {exc}. "
                "Fix: match each placeholder's format (e.g. {n:02d} needs a number) to its values."
            ) from None
        if key is not None:
            self._filled[key] = text
        return text

    def _check(self, prompt: Any, model: Any, size: Any, seconds: Any, style: Any) -> tuple[str, str]:
        """Normalised ``(size, seconds)``, or a ValidationError naming the first offending field."""
        if not isinstance(model, str) or not model.strip():
            raise ValidationError(
                f"model must be a model name such as {_catalog.DEFAULT_MODEL!r}, got {model!r}. "
                "Fix: pass model='sora-2' or a name your server serves.",
                field="model",
            )
        served = self.capabilities.get(model) if self.strict and self.capabilities is not None else None
        checked = check_create(
            prompt=prompt, model=model, size=size, seconds=seconds, strict=self.strict and served is None
        )
        if served is not None:
            _check_served(model, checked["size"], checked["seconds"], served)
        if style is not None and not isinstance(style, str):
            raise ValidationError(
                f"style must be a preset name or None, got {style!r}. Fix: e.g. style='cinematic'.",
                field="style",
            )
        styled = apply_style(checked["prompt"], style)
        if styled is not prompt:
            # The preset is appended at send time; the result must still fit the prompt limit.
            check_prompt(styled)
        return checked["size"], checked["seconds"]


def _check_served(
    model: str, size: str, seconds: str, served: tuple[Sequence[str] | None, Sequence[str] | None]
) -> None:
    sizes, durations = served
    for name, value, allowed in (("size", size, sizes), ("seconds", seconds, durations)):
        if allowed is None:
            continue
        choices = tuple(str(v) for v in allowed)
        if value not in choices:
            raise ValidationError(
                f"{name}={value!r} is not served for {model} by this server. "
                f"Allowed: {', '.join(map(repr, choices))}. Fix: pass one of them, or another model.",
                field=name,
                allowed=choices,
            )


def _axis_values(name: str, value: Any) -> list[Any]:
    """An axis argument as a list of values: a single value (a string, a number, None) is one value."""
    if value is None or isinstance(value, (str, bytes, int, float)):
        return [value]
    if isinstance(value, (set, frozenset)):
        raise TypeError(
            f"{name} is a {type(value).__name__}, whose order is not stable. "
            f"Fix: pass a list, e.g. {name}={sorted(value, key=str)!r}."
        )
    if isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a value or a list of values, got a {type(value).__name__}. "
            f"Fix: e.g. {name}=[...] (a template's variables go in variables=)."
        )
    if isinstance(value, Iterable):
        values = list(value)
        if not values:
            hint = "None for no style" if name == "style" else "at least one value"
            raise ValueError(f"{name} is empty, so the sweep has no jobs. Fix: pass {hint}, e.g. {name}=[...].")
        return values
    return [value]


def _placeholders(template: object) -> list[str]:
    """The placeholder names of a template, in order of first appearance."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError(
            f"template must be a non-empty string, got {template!r}. Fix: e.g. template='a {{animal}} surfing'."
        )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"template {template!r} is not a valid format string ({exc}). "
            "Fix: write placeholders as {name}, and literal braces as {{ and }}."
        ) from None
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(
                f"template {template!r} has the placeholder {{{name}}}; placeholders must be plain names "
                "such as {animal}. Fix: rename it, and write literal braces as {{ and }}."
            )
        if name in _RESERVED_PLACEHOLDERS:
            raise ValueError(
                f"template {template!r} uses {{{name}}}, which cannot be a placeholder. "
                f"Fix: use a variable of your own, or one of {', '.join('{' + a + '}' for a in _GRID_AXES)}."
            )
        if name not in names:
            names.append(name)
    return names


def _variable_values(
    template: str | None, var_names: list[str], variables: Mapping[str, Any] | None, *, rows_mode: bool
) -> dict[str, list[Any]]:
    """Check that template placeholders and variables match; the values of each variable."""
    if template is None:
        return {}
    given = dict(variables or {})
    for name in given:
        if name in _GRID_AXES:
            raise ValueError(
                f"variables[{name!r}] names an axis. Fix: pass {name}=[...] instead; "
                f"{{{name}}} in the template is filled from each job's {name}."
            )
        if name not in var_names:
            used = ", ".join("{" + n + "}" for n in var_names) or "none"
            raise ValueError(
                f"variables[{name!r}] is not used by template {template!r} (its placeholders: {used}). "
                f"Fix: add {{{name}}} to the template, or remove {name!r} from variables."
            )
    if not rows_mode:
        for name in var_names:
            if name not in given:
                raise ValueError(
                    f"template placeholder {{{name}}} has no values: variables gives "
                    f"{', '.join(map(repr, given)) or 'none'}. Fix: pass variables={{{name!r}: [...]}} "
                    f"or remove {{{name}}} from template {template!r}."
                )
    return {name: _axis_values(f"variables[{name!r}]", given[name]) for name in var_names if name in given}


def _combinations(names: list[str], values: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    for combo in itertools.product(*(values[name] for name in names)):
        yield dict(zip(names, combo, strict=True))


def _check_reference(reference: object, name: str) -> str | None:
    if reference is None:
        return None
    if isinstance(reference, (str, os.PathLike)):
        path = os.fspath(reference)
        if isinstance(path, str):
            return path
    raise TypeError(
        f"{name} must be the path of an image (or None) in a sweep, got {type(reference).__name__}. "
        "Fix: save the image to a file and pass its path."
    )


def _seconds_text(seconds: Any) -> str:
    if isinstance(seconds, float) and seconds.is_integer():
        return str(int(seconds))
    return str(seconds)


# --- figures and messages ----------------------------------------------------------------------


def _duration(seconds: str) -> float | None:
    try:
        value = float(seconds)
    except ValueError:
        return None
    return value if value >= 0 else None


def _money(value: float) -> float:
    """Round away float noise (0.1 * 8 = 0.8000000000000002) without losing a real fraction of a cent."""
    return round(value, 6)


def _ceil_cents(value: float) -> str:
    cents = -(-round(value * 1e6) // 10_000)
    return f"{cents / 100:.2f}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _format_seconds(seconds: float) -> str:
    return f"{seconds:,.0f} s" if float(seconds).is_integer() else f"{seconds:,.1f} s"


def _describe_axes(axes: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in axes.items())


def _did_you_mean(key: object, allowed: Sequence[str]) -> str:
    matches = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _check_run_option(key: str, value: Any, file: Path) -> Any:
    where = f"sweep file {str(file)!r}"
    if key == "max_concurrency":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: max_concurrency must be a whole number of at least 1, got {value!r}.")
    elif key == "budget_usd":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
            raise ValueError(f"{where}: budget_usd must be a number of US dollars (0 or more), got {value!r}.")
    elif value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string, got {value!r}.")
    return value
