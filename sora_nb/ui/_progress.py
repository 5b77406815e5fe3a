"""A run's live progress: its overall bar, its counts by status and a compact per-job list."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from .. import _display
from .._storyboards import StoryboardRun
from ._sync import DEFAULT_INTERVAL, ErrorLine, LiveBox, held

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

__all__ = ["LIST_INTERVAL", "RunProgress"]

LIST_INTERVAL = 1.0
"""Seconds between two redraws of a run's per-job list (its bar and counts redraw four times a second)."""


class RunProgress(LiveBox):
    """A run's overall progress bar, its counts by status and a compact per-job list, kept live.

    Redraws at most once per ``refresh_interval`` however many jobs change (one message per changed
    widget per redraw), so a 200-job sweep does not flood the front end. ``on_done`` is called on the
    engine's loop each time the run ends (again after a retry of its failed jobs ends), before the bar and
    the counts show the end.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start()
    >>> progress = sora_nb.ui.RunProgress(run, show_jobs=False)  # the bar and the counts only
    >>> run.wait(timeout=60).counts()
    {'completed': 2}
    >>> client.close()
    """

    def __init__(self, run: Run, *, refresh_interval: float = DEFAULT_INTERVAL, show_jobs: bool = True,
                 on_done: Callable[[], None] | None = None) -> None:
        self.run = run
        self._on_done = on_done
        self._was_done = False
        self._reports_progress = run.profile.capabilities.reports_progress
        self.label = widgets.HTML(f"<b>run {html.escape(run.id)}</b>")
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, bar_style="info",
                                         layout=widgets.Layout(width="320px"))
        self.bar.add_class("sora-nb-bar")
        self.counts = widgets.HTML("")
        self.counts.add_class("sora-nb-counts")
        # A pooled run's load per backend (sora_nb.pool); hidden for a run on one server.
        self.backends = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.backends.add_class("sora-nb-backends")
        self.job_list = widgets.HTML("", layout=widgets.Layout(display=None if show_jobs else "none"))
        self.job_list.add_class("sora-nb-joblist-widget")
        self.error = ErrorLine()
        super().__init__([widgets.HBox([self.label, self.bar, self.counts], layout=widgets.Layout()),
                          self.backends, self.job_list, self.error])
        self.add_class("sora-nb-run")
        self._list_at = float("-inf")
        self._list_interval = LIST_INTERVAL if refresh_interval > 0 else 0.0  # 0: the naive baseline
        self._follow(run._runtime, run, self._render, interval=refresh_interval, tick=self._tick)

    def _tick(self) -> float | None:
        return None if self.run.done else 1.0

    def _render(self) -> None:
        # The run's end is handed on first: a front end applies the kernel's messages in order, so a green bar
        # means that what follows the end (the sweep builder's Launch enabled, Cancel disabled) is shown too
        # (handed on last, a Launch clicked as the bar turned green met a still-disabled button).
        ended = self.run.done and not self._was_done
        self._was_done = self.run.done
        try:
            if ended and self._on_done is not None:
                self._on_done()
        finally:  # (its failure is shown in the error line; the bar still shows the end)
            self._draw()

    def _draw(self) -> None:
        jobs = list(self.run.jobs)
        latest = self.run._latest_jobs()  # each request's latest job, once for the bar and both counts
        value, style = _display.run_bar_state(jobs, previous=self.bar.bar_style, latest=latest)
        if isinstance(self.run, StoryboardRun):
            # Boards send their shots in turn: the jobs so far are not the whole sweep, its boards are.
            value = float(self.run.progress)
            states = self.run.board_counts()
            style = ("success" if states == {"completed": len(self.run.boards)} else
                     "danger" if "failed" in states and "running" not in states else style)
        if not self._reports_progress and style == "" and not self.run.done:
            style = "info"
        with held(self.bar):
            self.bar.value = value
            self.bar.bar_style = style
        self.counts.value = html.escape(_display.run_counts_text(jobs, latest=latest))
        per_backend = _display.backend_counts_text(jobs, latest=latest)
        if per_backend:
            with held(self.backends):
                self.backends.value = html.escape(f"per backend: {per_backend}")
                self.backends.layout.display = None
        # The per-job list is the one big message (about 200 bytes a job): once a second is plenty;
        # the once-a-second tick, or the run's end, brings the last changes.
        now = time.monotonic()
        if self.job_list.layout.display != "none" and (now - self._list_at >= self._list_interval or self.run.done):
            self._list_at = now
            self.job_list.value = (_display.board_list_html(self.run) if isinstance(self.run, StoryboardRun)
                                   else _display.job_list_html(jobs, self.run.axes))

    def _static_title(self) -> str:
        counts = ", ".join(f"{n} {_display.status_words(s)}" for s, n in sorted(self.run.counts().items()))
        return f"run {self.run.id}: {counts or 'no jobs'}"

    def _static_jobs(self) -> list[Job]:
        return list(self.run.jobs)

    def __repr__(self) -> str:
        return f"<RunProgress {self.run!r}>"
