"""What a sweep will cost, before anything is sent: the :class:`Estimate` of a plan and the budget check.

Pure: prices come from the server's capabilities (OpenAI's contract by default), nothing is sent.

>>> from sora_nb._grid import expand
>>> print(estimate(expand(prompt=["a corgi", "a cat"], seconds=4)))
2 jobs, 8 s of video, est. $0.80
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _catalog
from ._capabilities import Capabilities
from ._errors import BudgetExceededError
from ._grid import InvalidCombo, SweepPlan

__all__ = ["Estimate", "check_budget", "estimate"]

_CELL = "padding:2px 10px 2px 0"
"""The estimate table's cells: a gap between columns whatever the page's table styles."""


@dataclass(frozen=True)
class Estimate:
    """What a sweep will generate and cost, before anything is sent.

    ``cost_usd`` is ``None`` as soon as one job's price is unknown (a gateway's own model): an
    unknown price is never counted as zero. ``known_cost_usd`` is then the cost of the jobs whose
    price is known, and ``unknown_cost_jobs`` how many are left out of it. ``by_model`` gives
    ``{"jobs", "seconds", "cost_usd"}`` per model (``cost_usd`` ``None`` where unknown).
    ``seconds_generated`` counts only durations that are numbers (a gateway may take others).

    >>> from sora_nb._cost import estimate
    >>> from sora_nb._grid import expand
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
                f"<td style='{_CELL}'>{html.escape(model)}</td>"
                f"<td style='{_CELL};text-align:right'>{figures['jobs']}</td>"
                f"<td style='{_CELL};text-align:right'>{_format_seconds(float(figures['seconds'] or 0))}</td>"
                f"<td style='{_CELL};text-align:right'>{'unknown' if cost is None else f'${cost:,.2f}'}</td>"
                "</tr>"
            )
        # Headers aligned as their columns, and cells padded: unstyled (as in a widget), the headers
        # centred over right-aligned figures ran together ("jobs video est. cost").
        head = "".join(f"<th style='{_CELL};text-align:{align}'>{name}</th>"
                       for name, align in (("model", "left"), ("jobs", "right"), ("video", "right"),
                                           ("est. cost", "right")))
        table = (f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>")
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


def estimate(plan: SweepPlan, *, capabilities: Capabilities = _catalog.CONTRACT) -> Estimate:
    """Count the jobs, generated seconds and cost of a plan at the prices ``capabilities`` declare.

    >>> from sora_nb._grid import expand
    >>> est = estimate(expand(prompt="a corgi", model=["sora-2", "my-model"], strict=False))
    >>> est.cost_usd is None, est.known_cost_usd, est.unknown_cost_jobs
    (True, 0.4, 1)
    """
    by_model: dict[str, dict[str, float | int | None]] = {}
    total_seconds = 0.0
    known_cost = 0.0
    unknown = 0
    for job in plan.jobs:
        duration = _duration(job.seconds)
        cost = capabilities.cost_usd(job.model, job.size, job.seconds)
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

    >>> from sora_nb._grid import expand
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
