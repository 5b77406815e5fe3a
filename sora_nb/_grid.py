"""Sweep expansion, the pure part: a sweep's description expanded into jobs and refused combinations.

Nothing here sends a request, sleeps or writes a file; the runner turns a :class:`SweepPlan` into
jobs. A sweep is described once and expanded into :class:`~sora_nb._types.JobSpec` objects, each with
its coordinates in ``axes`` (the DataFrame columns of the results). What a plan costs is
:mod:`sora_nb._cost`; a sweep written in a file is read by :mod:`sora_nb._sweepfile`; the object users
hold is :class:`sora_nb.Sweep` (:mod:`sora_nb._sweep`).

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

The module is over 500 lines on purpose: the three ways share one expansion (:class:`_Context`) and
one set of checks, which read best in one place.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _catalog
from ._capabilities import Capabilities
from ._errors import ValidationError
from ._styles import apply_style
from ._types import JobSpec
from ._validation import check_characters, check_create, check_prompt

__all__ = [
    "Capabilities",
    "InvalidCombo",
    "SweepPlan",
    "EXPAND_KEYS",
    "MAX_SWEEP_JOBS",
    "check_axis_names",
    "did_you_mean",
    "expand",
]

_GRID_AXES = ("model", "size", "seconds", "style")
"""The axes besides ``prompt``, in expansion order; a template may also use them as placeholders."""

_ROW_KEYS = ("prompt", "model", "size", "seconds", "style", "input_reference")
_RESERVED_PLACEHOLDERS = ("prompt", "repeat", "input_reference")

EXPAND_KEYS = (
    "prompt", "model", "size", "seconds", "style", "repeats", "input_reference",
    "template", "variables", "rows", "strict", "max_jobs", "characters",
)  # fmt: skip
CHARACTER_AXIS = "character"
"""The axis (and template placeholder) of a sweep's ``characters=``: the names a job's create sends."""
NO_CHARACTER = "someone"
"""What ``{character}`` in a template says for a job without a character."""

Cast = tuple[tuple[str, str], ...]
"""The characters of one job, as ``(id, name)`` pairs: empty for none."""
_MODEL_DEFAULT: Any = "\0model default"
"""An axis not given: each combination takes its model's default (``Capabilities.default_size_for``...)."""
MAX_SWEEP_JOBS = 10_000
"""The default cap on a sweep's combinations (``max_jobs=``), checked before any job is made."""


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


def expand(
    *,
    prompt: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    size: str | Sequence[str] | None = None,
    seconds: str | int | Sequence[str | int] | None = None,
    style: str | Sequence[str | None] | None = None,
    repeats: int = 1,
    input_reference: str | os.PathLike[str] | None = None,
    template: str | None = None,
    variables: Mapping[str, Any] | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    strict: bool = True,
    capabilities: Capabilities | None = None,
    max_jobs: int = MAX_SWEEP_JOBS,
    characters: Sequence[Cast] | None = None,
) -> SweepPlan:
    """Expand a sweep description into jobs, setting aside the combinations a server would reject.

    Args:
        prompt: One prompt or a list. Not needed when ``template`` or every row gives one.
        model, size, seconds, style: One value or a list each; ``seconds`` may be ints (``4`` -> ``"4"``).
            Not given: the capabilities' default model, and each model's default size and duration.
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
        capabilities: What the server accepts (default: OpenAI's contract, :data:`sora_nb._catalog.CONTRACT`).
        max_jobs: The most combinations a sweep may have, counted before any is made (a typo such as
            ``repeats=100000`` must not fill the memory); raise it for a sweep that big on purpose.
        characters: An axis of casts, each the ``(id, name)`` of up to two characters (``()`` for none), e.g.
            ``[(), (("char_1", "Ada"),)]`` for each prompt without and with Ada. A cast whose names are not
            all in the prompt is an invalid combination. A template's ``{character}`` says the cast's names
            (joined by " and "), or ``"someone"`` for none. The axis is named ``character`` (its value: the
            names, comma-separated, or ``None``).

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
    capabilities = capabilities or _catalog.CONTRACT
    model = capabilities.default_model if model is None else model
    size = _MODEL_DEFAULT if size is None else size
    seconds = _MODEL_DEFAULT if seconds is None else seconds
    reference = _check_reference(input_reference, "input_reference")
    placeholders = _placeholders(template) if template is not None else []
    casts = _casts(characters)
    if CHARACTER_AXIS in placeholders and casts is None:
        raise ValueError(
            f"template {template!r} uses {{{CHARACTER_AXIS}}} but no characters are given. "
            "Fix: pass characters=[None, ada] (each prompt without and with Ada), or drop {character}."
        )
    var_names = [name for name in placeholders if name not in _GRID_AXES and name != CHARACTER_AXIS]
    var_values = _variable_values(template, var_names, variables, rows_mode=rows is not None)
    context = _Context(
        template=template,
        var_names=var_names,
        uses_axes=any(name in _GRID_AXES for name in placeholders),
        strict=strict,
        capabilities=capabilities,
        repeats=repeats,
        casts=casts,
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
        _check_size(math.prod(len(v) for v in (prompts, *(var_values[n] for n in var_names), *grid))
                    * repeats * len(casts or [()]), max_jobs)
        for text in prompts:
            for variable_combo in _combinations(var_names, var_values):
                for values in itertools.product(*grid):
                    context.add(text, variable_combo, *values, reference=reference)
    axes = ("prompt", *var_names, *_GRID_AXES, *([CHARACTER_AXIS] if casts is not None else []), "repeat")
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
    allowed = list(EXPAND_KEYS)
    for name in axes:
        if name not in allowed:
            raise TypeError(
                f"sweep() has no argument {name!r}{did_you_mean(name, allowed)}. Allowed: {', '.join(allowed)}. "
                "Fix: use one of them (a template's own placeholders go in variables={...})."
            )


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
        capabilities: Capabilities,
        repeats: int,
        casts: list[Cast] | None = None,
    ) -> None:
        self.casts = casts
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
        """Validate one combination (with each cast of characters); record it as ``repeats`` jobs, or once as
        invalid."""
        if style == "":
            style = None
        # Not given: each model's own default size and duration (the same sweep runs on every profile).
        if size is _MODEL_DEFAULT:
            size = self.capabilities.default_size_for(model) if isinstance(model, str) else None
        if seconds is _MODEL_DEFAULT:
            seconds = (self.capabilities.default_seconds_for(model, size)
                       if isinstance(model, str) and isinstance(size, str) else None)
        for cast in self.casts if self.casts is not None else [None]:
            self._add_cast(prompt, variables, model, size, seconds, style, cast, reference=reference)

    def _add_cast(
        self,
        prompt: Any,
        variables: dict[str, Any],
        model: Any,
        size: Any,
        seconds: Any,
        style: Any,
        cast: Cast | None,
        *,
        reference: str | None,
    ) -> None:
        if self.template is not None:
            prompt = self._fill(variables, model, size, seconds, style, cast)
        named = {} if cast is None else {CHARACTER_AXIS: ", ".join(name for _, name in cast) or None}
        try:
            checked = self._check(prompt, model, size, seconds, style)
            if cast:
                check_characters(prompt, cast)
        except ValidationError as exc:
            axes = {"prompt": prompt, **variables, "model": model, "size": size, "seconds": seconds, "style": style,
                    **named}
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
                **named,
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
                    characters=cast or (),
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
                        f"rows[{index}] has unknown key {key!r}{extra}{did_you_mean(key, allowed)}. "
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

    def _fill(
        self, variables: dict[str, Any], model: Any, size: Any, seconds: Any, style: Any, cast: Cast | None = None
    ) -> str:
        assert self.template is not None
        try:
            key = (*variables.values(), model, size, seconds, style) if self.uses_axes else tuple(variables.values())
            key = (*key, cast)
            cached = self._filled.get(key)
        except TypeError:  # an unhashable value: fill without the cache
            key, cached = None, None
        if cached is not None:
            return cached
        values = dict(variables)
        if self.uses_axes:
            values.update(model=model, size=size, seconds=_seconds_text(seconds), style="" if style is None else style)
        if cast is not None:
            values[CHARACTER_AXIS] = " and ".join(name for _, name in cast) or NO_CHARACTER
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
        checked = check_create(prompt=prompt, model=model, size=size, seconds=seconds,
                               capabilities=self.capabilities if self.strict else None)
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


def _casts(characters: Sequence[Cast] | None) -> list[Cast] | None:
    """The characters axis as a list of casts (``None``: no such axis); an empty axis is refused."""
    if characters is None:
        return None
    if isinstance(characters, (str, bytes, Mapping)) or not isinstance(characters, Iterable):
        raise TypeError(
            f"characters must be a list of casts, got {type(characters).__name__}. Fix: characters=[None, ada]."
        )
    casts = [tuple((str(i), str(n)) for i, n in cast) for cast in characters]
    if not casts:
        raise ValueError("characters is empty, so the sweep has no jobs. Fix: e.g. characters=[None, ada].")
    return casts


def _seconds_text(seconds: Any) -> str:
    if isinstance(seconds, float) and seconds.is_integer():
        return str(int(seconds))
    return str(seconds)


def did_you_mean(key: object, allowed: Sequence[str]) -> str:
    """`` (did you mean 'model'?)`` for a close match of ``key`` among ``allowed``, else ``""``."""
    matches = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
