"""The sweep builder: axes in, job count, estimate and budget out, Launch, then the run's live progress."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .._styles import STYLES
from ._choices import ANY_SECONDS, ANY_SIZE, ChoiceSlot, seconds_options, size_options, union
from ._gallery import Gallery
from ._progress import RunProgress
from ._prompt import no_characters_reason
from ._sync import DEFAULT_INTERVAL, ErrorLine, Panel, guarded, held

if TYPE_CHECKING:
    from .._client import Client
    from .._cost import Estimate
    from .._jobs import Job
    from .._run import Run
    from .._sweep import Sweep

__all__ = ["SweepBuilder", "parse_lines", "parse_variables"]

_NO_STYLE = "(none)"
_WITHOUT = "(without)"


def parse_lines(text: str) -> list[str]:
    """Non-empty lines, stripped.

    >>> parse_lines("a corgi\\n\\n  a cat  ")
    ['a corgi', 'a cat']
    """
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_variables(text: str) -> dict[str, list[str]]:
    """Template variables written one per line as ``name: value, value``.

    >>> parse_variables("animal: corgi, cat\\ntime: dawn")
    {'animal': ['corgi', 'cat'], 'time': ['dawn']}
    """
    variables: dict[str, list[str]] = {}
    for line in parse_lines(text):
        name, sep, values = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"variables line {line!r} is not 'name: value, value'. Fix: e.g. 'animal: corgi, cat'.")
        variables[name.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return variables


class SweepBuilder(Panel):
    """Axes editors, the resulting job count, invalid combinations and estimated cost against a
    budget; Launch / Cancel / Retry failed; then the run's live progress (and, with ``gallery=True``, its
    gallery: where an app with no code shows the sweep's videos).

    Prompts are one per line, or a template such as ``a {animal} at {time}`` with variables
    ``animal: corgi, cat`` (one per line). Models, sizes, durations and styles are multi-selects whose
    options are exactly what the profile's capabilities allow: the sizes of the models picked, and the
    durations of those models at the sizes picked (comma-separated free text where not known). Characters
    are an axis too: each selected one (and "(without)") is a value, so "(without)" and Ada run each prompt
    without and with her (disabled, with the reason, on a server without characters).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> builder = sora_nb.ui.sweep(client)
    >>> builder
    <SweepBuilder profile='simulator' run=None>
    >>> client.close()
    """

    def __init__(
        self,
        client: Client,
        *,
        prompts: list[str] | None = None,
        budget_usd: float = 10.0,
        gallery: bool = False,
        refresh_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.client = client
        self.run: Run | None = None
        self.progress: RunProgress | None = None
        self.gallery: Gallery | None = None
        self._with_gallery = gallery
        self._interval = refresh_interval
        profile = client.profile
        caps = self._caps = profile.capabilities
        models = list(caps.model_names())
        wide = {"description_width": "80px"}
        box = widgets.Layout(width="300px")

        self.prompts = widgets.Textarea(value="\n".join(prompts or []), description="Prompts",
                                        placeholder="one prompt per line", style=wide,
                                        layout=widgets.Layout(width="100%", height="90px"))
        self.template = widgets.Text(description="Template", placeholder="a {animal} at {time} (instead of prompts)",
                                     style=wide, layout=widgets.Layout(width="100%"))
        self.variables = widgets.Textarea(description="Variables", placeholder="animal: corgi, cat\ntime: dawn, dusk",
                                          style=wide, layout=widgets.Layout(width="100%", height="60px"))
        self.error = ErrorLine()
        if caps.open_models:  # the server takes any name
            known = f" (known: {', '.join(models)})" if models else ""
            self.models = widgets.Text(value=caps.default_model, description="Models", style=wide, layout=box,
                                       placeholder=f"any model names, comma-separated{known}")
        else:
            self.models = widgets.SelectMultiple(options=models, value=(caps.default_model,), description="Models",
                                                 style=wide, layout=box, rows=min(4, len(models)))
        self._sizes = ChoiceSlot(
            lambda: widgets.SelectMultiple(description="Sizes", style=wide, layout=box, rows=4),
            lambda: widgets.Text(description="Sizes", placeholder=ANY_SIZE + ", comma-separated", style=wide,
                                 layout=box),
            guarded(self.error, self._update_seconds))
        self._seconds = ChoiceSlot(
            lambda: widgets.SelectMultiple(description="Durations", style=wide, layout=box, rows=4),
            lambda: widgets.Text(description="Durations", placeholder=ANY_SECONDS + ", comma-separated", style=wide,
                                 layout=box),
            guarded(self.error, self._update_summary))
        self.styles = widgets.SelectMultiple(options=[_NO_STYLE, *STYLES], value=(_NO_STYLE,), description="Styles",
                                             style=wide, layout=box, rows=4)
        self.characters = widgets.SelectMultiple(value=(), description="Characters", style=wide, layout=box, rows=3)
        self.characters.add_class("sora-nb-sweep-characters")
        self.characters_refresh = widgets.Button(icon="refresh", tooltip="list the characters made since",
                                                 layout=widgets.Layout(width="36px"))
        self.characters_refresh.add_class("sora-nb-refresh-characters")
        self.refresh_characters()
        self.repeats = widgets.BoundedIntText(value=1, min=1, max=100, description="Repeats", style=wide,
                                              layout=widgets.Layout(width="160px"))
        self.budget = widgets.BoundedFloatText(value=budget_usd, min=0.0, max=1e6, step=1.0,
                                               description="Budget $", style=wide,
                                               layout=widgets.Layout(width="180px"),
                                               tooltip="0 means no budget")
        self.concurrency = widgets.BoundedIntText(value=profile.max_concurrency, min=1, max=256,
                                                  description="In flight", style=wide,
                                                  layout=widgets.Layout(width="160px"))
        self.summary = widgets.HTML("")
        self.summary.add_class("sora-nb-summary")
        self.launch_button = widgets.Button(description="Launch", icon="rocket", button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="warning", disabled=True)
        self.retry_button = widgets.Button(description="Retry failed", icon="redo", disabled=True)
        for button, name in ((self.launch_button, "launch"), (self.cancel_button, "cancel"),
                             (self.retry_button, "retry-failed")):
            button.add_class(f"sora-nb-{name}")
        self.output = widgets.VBox([])
        editors = (self.prompts, self.template, self.variables, self.styles, self.characters, self.repeats,
                   self.budget)
        super().__init__([
            self.prompts, self.template, self.variables,
            widgets.HBox([self.models, self._sizes], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self._seconds, self.styles, self.characters, self.characters_refresh],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.repeats, self.budget, self.concurrency], layout=widgets.Layout(flex_flow="row wrap")),
            self.summary,
            widgets.HBox([self.launch_button, self.cancel_button, self.retry_button], layout=widgets.Layout()),
            self.error,
            self.output,
        ])
        self.add_class("sora-nb-sweep")
        for editor in editors:
            editor.observe(guarded(self.error, lambda _c: self._update_summary()), "value")
        self.models.observe(guarded(self.error, lambda _c: self._update_sizes()), "value")
        self.launch_button.on_click(guarded(self.error, lambda _b: self.launch()))
        self.characters_refresh.on_click(guarded(self.error, lambda _b: self.refresh_characters()))
        self.cancel_button.on_click(guarded(self.error, lambda _b: self._cancel()))
        self.retry_button.on_click(guarded(self.error, lambda _b: self._retry_failed()))
        self._update_sizes()

    # ------------------------------------------------------------------ choosers (follow the models picked)
    @property
    def sizes(self) -> Any:
        """The sizes field: the sizes of the models picked, or free text where one's are not known."""
        return self._sizes.widget

    @property
    def seconds(self) -> Any:
        """The durations field: those of the models picked at the sizes picked, or free text."""
        return self._seconds.widget

    def _picked_models(self) -> list[str]:
        return _values(self.models) or [self._caps.default_model]

    def _update_sizes(self) -> None:
        models = self._picked_models()
        allowed = union(self._caps.sizes(model) for model in models)
        picked = [size for size in _values(self.sizes) if allowed is None or size in allowed]
        default = [self._caps.default_size_for(models[0])]
        self._sizes.show(size_options(allowed), _shown(allowed is None, picked or default))
        self._update_seconds()

    def _update_seconds(self) -> None:
        models = self._picked_models()
        sizes: list[str | None] = [*_values(self.sizes)] or [None]
        allowed = union(self._caps.seconds(model, size) for model in models for size in sizes)
        picked = [s for s in _values(self.seconds) if allowed is None or s in allowed]
        default = [self._caps.default_seconds_for(models[0], sizes[0])]
        self._seconds.show(seconds_options(allowed), _shown(allowed is None, picked or default))
        self._update_summary()

    def refresh_characters(self) -> None:
        """List the server's characters as axis values again (after one was made elsewhere), keeping the choice."""
        reason = no_characters_reason(self.client)
        known = [] if reason else self.client.characters()
        options = [(_WITHOUT, ""), *((c.name or "", c.id or "") for c in known)]
        with self.characters.hold_sync():
            kept = tuple(v for v in self.characters.value if v in [value for _, value in options]) or ("",)
            self.characters.options = options
            self.characters.value = kept
            self.characters.rows = min(4, len(options))
            self.characters.disabled = bool(reason) or not known
            self.characters.tooltip = reason or ("each selected value is one axis value: (without) and Ada run "
                                                 "each prompt without and with her" if known else
                                                 "no characters made yet (a job card's Make character)")
        self.characters_refresh.disabled = bool(reason)

    # ------------------------------------------------------------------ the plan (pure, from the editors)
    def axes(self) -> dict[str, Any]:
        """The ``client.sweep(...)`` arguments the editors describe."""
        axes: dict[str, Any] = {}
        template = str(self.template.value).strip()
        if template:
            axes["template"] = template
            variables = parse_variables(str(self.variables.value))
            if variables:
                axes["variables"] = variables
        else:
            axes["prompt"] = parse_lines(str(self.prompts.value))
        axes["model"] = _values(self.models)
        axes["size"] = _values(self.sizes)
        axes["seconds"] = _values(self.seconds)
        axes["style"] = [None if s == _NO_STYLE else s for s in self.styles.value]
        if tuple(self.characters.value) not in ((), ("",)):  # only "(without)": no characters axis at all
            axes["characters"] = [character_id or None for character_id in self.characters.value]
        axes["repeats"] = int(self.repeats.value)
        return axes

    def plan(self) -> Sweep[Run]:
        """The sweep the editors describe (nothing is sent)."""
        sweep: Sweep[Run] = self.client.sweep(**self.axes())  # (no storyboard: a sweep of videos)
        return sweep

    @property
    def budget_usd(self) -> float | None:
        value = float(self.budget.value)
        return value if value > 0 else None

    def _update_summary(self) -> None:
        self._update_run_buttons()
        try:
            estimate: Estimate | None = self.plan().estimate()
            problem = None
        except (ValueError, TypeError) as exc:
            estimate, problem = None, str(exc)
        if estimate is None:
            self.summary.value = f'<div style="color:#c62828">{html.escape(problem or "")}</div>'
            self.launch_button.disabled = True
            self.launch_button.tooltip = "fix the axes first"
            return
        budget = self.budget_usd
        spend = estimate.cost_usd if estimate.cost_usd is not None else estimate.known_cost_usd
        over = budget is not None and spend > budget + 1e-9
        budget_text = ("no budget" if budget is None else
                       f'<b style="color:#c62828">over the budget of ${budget:,.2f}</b>' if over else
                       f"within the budget of ${budget:,.2f}")
        self.summary.value = (f"<div><b>{html.escape(str(estimate))}</b> · {budget_text}</div>"
                              + estimate.details_html())
        running = self._running()
        with self.launch_button.hold_sync():
            self.launch_button.disabled = estimate.jobs == 0 or over or running is not None
            self.launch_button.tooltip = ("no valid jobs" if estimate.jobs == 0 else
                                          "raise the budget or remove jobs" if over else
                                          f"run {running.id} is still going: wait for it, or Cancel it"
                                          if running is not None else f"start {estimate.jobs} jobs")

    def _update_run_buttons(self) -> None:
        """Cancel while the run goes; Retry failed once it ended with requests that did not complete."""
        running = self._running()
        unfinished = (self.run is not None and running is None
                      and any(job.status != "completed" for job in self.run._latest_jobs()))
        with held(self.cancel_button, self.retry_button):
            self.cancel_button.disabled = running is None
            self.cancel_button.tooltip = "cancel the jobs still going" if running else "no run is going"
            self.retry_button.disabled = not unfinished
            self.retry_button.tooltip = ("submit the failed, cancelled and expired jobs again" if unfinished else
                                         "nothing failed" if self.run is not None and running is None else
                                         "once the run has ended")

    def _running(self) -> Run | None:
        return self.run if self.run is not None and not self.run.done else None

    # ------------------------------------------------------------------ acting (any thread)
    def launch(self) -> Run:
        """What Launch does: start the sweep (refused over budget, or while the last run goes) and show
        its progress."""
        # A second launch would leave the first run going out of reach of Cancel (a double click
        # arrives before the button is disabled in the browser).
        running = self._running()
        if running is not None:
            raise ValueError(f"run {running.id} is still going. Fix: wait for it to end, or Cancel it, then Launch.")
        run = self.plan().start(max_concurrency=int(self.concurrency.value), budget_usd=self.budget_usd)
        self.run = run
        for previous in (self.progress, self.gallery):
            if previous is not None:
                previous.close()
        self.progress = RunProgress(run, refresh_interval=self._interval, on_done=self._update_summary)
        self.gallery = Gallery(run) if self._with_gallery else None
        self.output.children = (self.progress,) if self.gallery is None else (self.progress, self.gallery)
        self._update_summary()
        return run

    def _cancel(self) -> None:
        if self.run is None:
            raise ValueError("Nothing to cancel: launch a sweep first.")
        self.run._cancel_soon()  # a click waits for no loop (a running cell may hold it)

    def _retry_failed(self) -> None:
        if self.run is None:
            raise ValueError("Nothing to retry: launch a sweep first.")
        jobs = self.run.retry_failed()
        if not jobs:
            raise ValueError("No failed, cancelled or expired jobs to retry.")
        self._update_summary()  # the run goes again: no Launch until it ends
        if self.progress is not None:
            self.progress._coalescer.mark()

    def close(self) -> None:
        for item in (getattr(self, "progress", None), getattr(self, "gallery", None)):
            if item is not None:
                item.close()
        super().close()

    def _static_title(self) -> str:
        return "sora_nb sweep builder" + (f" · run {self.run.id}" if self.run is not None else "")

    def _static_jobs(self) -> list[Job]:
        return list(self.run.jobs) if self.run is not None else []

    def __repr__(self) -> str:
        return f"<SweepBuilder profile={self.client.profile.name!r} run={self.run.id if self.run else None!r}>"


def _values(field: Any) -> list[str]:
    """The values picked in a multi-select, or written comma-separated in a text box (none yet: ``[]``)."""
    if field is None:
        return []
    if isinstance(field.value, tuple):
        return [str(value) for value in field.value]
    return [value.strip() for value in str(field.value).split(",") if value.strip()]


def _shown(free: bool, values: list[str]) -> Any:
    """``values`` as a field holds them: comma-separated text, or a tuple for a multi-select."""
    return ", ".join(values) if free else tuple(values)
