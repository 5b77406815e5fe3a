"""Review: rate a run's videos one at a time (stars, tags, a note)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display
from ._job import MediaMode, resolve_media, video_widget
from ._keys import Key, keys_hint
from ._sync import ErrorLine, Panel, guarded, show_html

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

__all__ = ["Review"]


class Review(Panel):
    """One finished video at a time with 1-5 stars, tags and a note; Save (rates and moves on), Skip,
    Previous, Undo, and the progress ("12 of 48 rated"). Each rating is stored with ``run.rate``
    (durable, in the ledger; several raters may rate the same video).

    Keys (the widget clicked first; said on its hint line): ``1``-``5`` stars, ``n`` save and next,
    ``p`` previous, ``t`` the tags box, ``s`` skip. Each presses the widget's own toggle or button.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> review = run.review(rater="ana", tags=("sharp", "blurry"))
    >>> review.stars.value = 4; review.save()  # what choosing 4 stars and Save do
    >>> review.progress.value
    '1 of 2 rated by ana'
    >>> client.close()
    """

    def __init__(self, run: Run, *, rater: str | None = None, tags: Sequence[str] = (), width: int = 480,
                 media: MediaMode = "auto") -> None:
        self.run, self.rater, self.width = run, rater, width
        self.media_mode: MediaMode = resolve_media(media)
        self.jobs: list[Job] = [
            job for job in run._videos() if job.status == "completed" and job.video_path is not None
        ]
        self.position = 0
        self.error = ErrorLine()
        self.progress = widgets.HTML()
        self.progress.add_class("sora-nb-progress")
        self.title = widgets.HTML()
        self.title.add_class("sora-nb-title")
        self.stage: Any = widgets.Output() if self.media_mode == "url" else widgets.Box()
        self.stars = widgets.ToggleButtons(options=[("–", 0), *((f"{n}★", n) for n in range(1, 6))], value=0,
                                           style={"button_width": "48px"})
        self.stars.add_class("sora-nb-stars")
        self.tags = widgets.TagsInput(value=[], allowed_tags=list(tags), allow_duplicates=False,
                                      placeholder=f"tags: {', '.join(tags)}" if tags else "tags")
        self.tags.add_class("sora-nb-tags")
        self.note = widgets.Text(placeholder="a note (optional)", layout=widgets.Layout(width=f"{width}px"))
        buttons = []
        for label, action, style in (("Save", self.save, "primary"), ("Skip", self.skip, ""),
                                     ("Previous", self.previous, ""), ("Undo", self.undo, "")):
            button = widgets.Button(description=label, button_style=style, layout=widgets.Layout(width="90px"))
            button.on_click(guarded(self.error, lambda _b, act=action: act()))
            button.add_class(f"sora-nb-{label.lower()}")
            buttons.append(button)
        # The keys 1-5 press hidden buttons rather than the stars' toggles: a button's click reaches the kernel
        # in order with the Save that follows, while a toggle's new value may wait in the front end behind
        # an earlier update of it (ipywidgets holds back state updates, not clicks, while the kernel is
        # busy): "2" then "n" pressed at once saved a rating without its stars.
        self.star_keys = []
        for n in range(1, 6):
            key = widgets.Button(description=f"{n}★", layout=widgets.Layout(display="none"))
            key.on_click(guarded(self.error, lambda _b, n=n: setattr(self.stars, "value", n)))
            key.add_class(f"sora-nb-star-{n}")
            self.star_keys.append(key)
        self.key_hint = keys_hint("sora-nb-review", [
            *(Key(str(n), f".sora-nb-star-{n}", f"{n} stars") for n in range(1, 6)),
            Key("n", ".sora-nb-save", "save and next"), Key("p", ".sora-nb-previous", "previous"),
            Key("t", ".sora-nb-tags", "tags"), Key("s", ".sora-nb-skip", "skip"),
        ], shown=[("1-5", "stars"), ("n", "save and next"), ("p", "previous"), ("t", "tags (Enter adds, Esc leaves)"),
                  ("s", "skip")])
        super().__init__([self.progress, self.title, self.stage, self.stars, self.tags, self.note,
                          widgets.HBox([*buttons, *self.star_keys]), self.key_hint, self.error])
        self.add_class("sora-nb-review")
        self._show()

    @property
    def job(self) -> Job | None:
        """The job shown, or None when the run has no finished video."""
        return self.jobs[self.position] if self.jobs else None

    def save(self) -> None:
        """Rate the video shown with the stars, tags and note chosen, then show the next one."""
        job = self.job
        if job is None:
            return
        if not (self.stars.value or self.tags.value or self.note.value.strip()):
            self.error.show("Nothing to save: choose stars (keys 1-5), tags or a note first, or Skip (s).")
            return
        self.run.rate(job, stars=self.stars.value or None, tags=tuple(self.tags.value), note=self.note.value,
                      rater=self.rater)
        self.skip()

    def skip(self) -> None:
        """Show the next video without rating this one."""
        if self.jobs:
            self.position = (self.position + 1) % len(self.jobs)
        self._show()

    def previous(self) -> None:
        """Show the previous video."""
        if self.jobs:
            self.position = (self.position - 1) % len(self.jobs)
        self._show()

    def undo(self) -> None:
        """Withdraw the last rating of this rater (or anyone's, without a rater)."""
        self.run.undo_judgment(rater=self.rater)
        self._show()

    def _rated(self) -> set[str]:
        frame = self.run.judgments()
        mine = frame[frame["kind"] == "rating"]
        if self.rater is not None:
            mine = mine[mine["rater"] == self.rater]
        return set(mine["job_id"])

    def _show(self) -> None:
        rated = self._rated() & {job.id for job in self.jobs}
        who = f" by {self.rater}" if self.rater else ""
        self._said = f"{len(rated)} of {len(self.jobs)} rated{who}"
        self.progress.value = html.escape(self._said)
        job = self.job
        self.stars.value, self.tags.value, self.note.value = 0, [], ""
        if job is None or job.video_path is None:
            self.title.value = "<i>no finished video to rate yet</i>"
            self._refresh_static()
            return
        axes = " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in job.spec.axes.items()
                          if k != "prompt" and v is not None and v != "")  # the prompt is the title above
        self.title.value = (f"<b>{html.escape(job.spec.prompt)}</b><br><span style='opacity:.7'>{axes or job.id}"
                            f"{' · rated' if job.id in rated else ''}</span>")
        if self.media_mode == "url":
            show_html(self.stage, _display.video_html(job.video_path, job.thumbnail_path, width=self.width))
        else:
            for child in self.stage.children:
                child.close()
            self.stage.children = (video_widget(job.video_path, controls=True,
                                                layout=widgets.Layout(width=f"{self.width}px")),)
        self._refresh_static()

    def _static_title(self) -> str:
        return f"sora_nb review · {self._said}"

    def _static_jobs(self) -> list[Job]:
        return self.jobs

    def __repr__(self) -> str:
        return f"<Review run={self.run.id} {self.progress.value!r}>"
