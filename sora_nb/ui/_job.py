"""The job card: one job's label, live progress, error, video and follow-up actions."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import ipywidgets as widgets

from .. import _display
from .._errors import NotFoundError
from ._sync import DEFAULT_INTERVAL, ErrorLine, LiveBox, guarded, held, show_html

if TYPE_CHECKING:
    from pathlib import Path

    from .._client import Client
    from .._jobs import Job
    from .._types import Character

__all__ = ["JobCard", "MAX_WIDGET_BYTES", "MediaMode", "resolve_media", "video_widget"]

MediaMode = Literal["auto", "url", "bytes"]

MAX_WIDGET_BYTES = 64 * 1024 * 1024
"""Above this, ``media="bytes"`` shows a note (and a link where there is one) instead of sending the file."""


def resolve_media(media: str) -> MediaMode:
    """``"url"`` (a ``<video>`` served by the notebook server) or ``"bytes"`` (an ``ipywidgets.Video``).

    ``"auto"`` picks bytes in VS Code, whose notebooks have no file server behind them, else URLs.
    """
    if media not in ("auto", "url", "bytes"):
        raise ValueError(f"media={media!r} is not one of 'auto', 'url', 'bytes'.")
    if media == "bytes" or (media == "auto" and any(name.startswith("VSCODE_") for name in os.environ)):
        return "bytes"
    return "url"


def video_widget(path: Path, *, too_large: str = "", **options: Any) -> Any:
    """An ``ipywidgets.Video`` of the file at ``path`` (read now), or above :data:`MAX_WIDGET_BYTES` a
    note naming the file (ending with ``too_large``, e.g. ``"; use the link"``).

    The bytes travel to the browser once and are not saved in the notebook (unless widget state is).
    """
    if path.stat().st_size > MAX_WIDGET_BYTES:
        return widgets.HTML(f"<i>{html.escape(path.name)} is too large to send to the browser{html.escape(too_large)}."
                            "</i>")
    return widgets.Video(value=path.read_bytes(), format="mp4", **options)


class JobCard(LiveBox):
    """A live card for one job: label, progress bar, status with elapsed time and ETA, the error on
    failure and, when done, the poster and a playable video, a download link, and Remix / Extend /
    Retry / Delete buttons (disabled with a reason where the server cannot do them).

    Args:
        job: the job to follow.
        on_job: called with each job that a button creates (remix, extend, retry); by default their
            cards are added below this one.
        media: ``"url"`` plays the file through the notebook server (nothing embedded), ``"bytes"``
            sends it as an ``ipywidgets.Video`` (not saved in the notebook unless widget state is),
            ``"auto"`` picks bytes in VS Code.
        refresh_interval: seconds between redraws (0.25: four a second at most).
        client: the client that made the job: with it, "Make character" turns a stretch of the finished
            video (the clip range, 2-4 s) into a character (``client.create_character``); without it, or on a
            server without characters, the button is disabled and says why.
        on_character: called with each character made here (the prompt box adds it to its picker).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> card = sora_nb.ui.JobCard(client.generate("a corgi surfing"))
    >>> card.job.wait(timeout=60).status
    'completed'
    >>> client.close()
    """

    def __init__(
        self,
        job: Job,
        *,
        on_job: Callable[[Job], object] | None = None,
        media: MediaMode = "auto",
        refresh_interval: float = DEFAULT_INTERVAL,
        client: Client | None = None,
        on_character: Callable[[Character], object] | None = None,
    ) -> None:
        self.job = job
        self.client = client
        self._on_character = on_character
        self._making = False
        self._on_job = on_job
        self._media_mode: MediaMode = resolve_media(media)
        self._media_shown = False
        self._deleted = False  # the server's copy: nothing to remix, extend or delete any more

        self.title = widgets.HTML(_display.job_title_html(job))
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, bar_style="info",
                                         layout=widgets.Layout(width="260px"))
        self.bar.add_class("sora-nb-bar")
        self.status = widgets.HTML("")
        self.status.add_class("sora-nb-status")
        self.error = ErrorLine()
        self.job_error = widgets.HTML("")
        self.media = widgets.Output() if self._media_mode == "url" else widgets.Box()
        self.media.add_class("sora-nb-media")
        self.link = widgets.HTML("")
        self.follow_up = widgets.Text(placeholder="new prompt for Remix / Extend",
                                      layout=widgets.Layout(width="260px"))

        def button(label: str, icon: str, handler: Callable[[], None], style: str = "") -> Any:
            b = widgets.Button(description=label, icon=icon, button_style=style, disabled=True,
                               layout=widgets.Layout(width="auto"))
            b.add_class(f"sora-nb-{label.lower().replace(' ', '-')}")
            b.on_click(guarded(self.error, lambda _b: handler()))
            return b

        self.cancel_button = button("Cancel", "stop", self._cancel, "warning")
        self.remix_button = button("Remix", "random", self._remix)
        self.extend_button = button("Extend", "forward", self._extend)
        self.retry_button = button("Retry", "redo", self._retry)
        self.delete_button = button("Delete", "trash", self._delete)
        self.derived = widgets.VBox([])
        actions = widgets.HBox([self.follow_up, self.cancel_button, self.remix_button, self.extend_button,
                                self.retry_button, self.delete_button],
                               layout=widgets.Layout(flex_flow="row wrap"))
        length = float(job.spec.seconds) if job.spec.seconds.replace(".", "", 1).isdigit() else 4.0
        self.character_name = widgets.Text(placeholder="character name",
                                           layout=widgets.Layout(width="220px"))
        self.character_name.add_class("sora-nb-character-name")
        self.character_range = widgets.FloatRangeSlider(
            value=(0.0, min(4.0, length)), min=0.0, max=length, step=0.5, description="Clip (s)",
            readout_format=".1f", style={"description_width": "55px"}, layout=widgets.Layout(width="260px"))
        self.character_range.add_class("sora-nb-character-range")
        self.character_button = button("Make character", "user-plus", self._make_character)
        self.character_status = widgets.HTML("")
        self.character_status.add_class("sora-nb-character-status")
        character_row = widgets.HBox([self.character_name, self.character_range, self.character_button,
                                      self.character_status],
                                     layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__(
            [self.title, widgets.HBox([self.bar, self.status], layout=widgets.Layout()),
             self.job_error, self.media, self.link, actions, character_row, self.error, self.derived],
            layout=widgets.Layout(border="1px solid var(--jp-border-color2, #ddd)", padding="6px",
                                  margin="4px 0"),
        )
        self.add_class("sora-nb-jobcard")
        self._follow(job._runtime, job, self._render, interval=refresh_interval, tick=self._tick)

    # ------------------------------------------------------------------ following the job (on the loop)
    def _tick(self) -> float | None:
        # Elapsed time moves by itself while the job runs: redraw once a second.
        return None if self.job.done else 1.0

    def _render(self) -> None:
        job = self.job
        value, style = _display.bar_state(job.status, job.progress, done=job.done, previous=self.bar.bar_style)
        # Read at each redraw: a pooled job's server (and so what it can do) is known once it is routed.
        if not job.profile.capabilities.reports_progress and not job.done and job.progress is None:
            value = 100.0  # a full "info" bar: working, amount unknown (as tqdm shows an unknown total)
        with held(self.bar, self.remix_button, self.extend_button, self.retry_button, self.delete_button,
                  self.cancel_button, self.character_button):
            self.bar.value = value
            self.bar.bar_style = style
            self.status.value = f"<span>{html.escape(_display.job_status_text(job))}</span>"
            error = job.error
            if error is not None and job.status != "completed":
                self.job_error.value = (f'<div style="color:#c62828">{html.escape(error.code or "error")}: '
                                        f"{html.escape(error.message)}</div>")
            self._render_buttons()
        if job.done and job.video_path is not None and not self._media_shown:
            self._media_shown = True
            self._show_media()
        if job.done and self._following is not None:
            self._following.end()  # nothing changes after the end; let the card be collected

    def _render_buttons(self) -> None:
        job, profile = self.job, self.job.profile
        completed = job.done and job.status == "completed" and job.remote_id is not None and not self._deleted
        later = "deleted on the server" if self._deleted else "available once the video is done"

        def enable(button: Any, supported: bool, ready: bool, what: str, waiting: str) -> None:
            if not supported:
                button.disabled = True
                button.tooltip = f"the {profile.name!r} server cannot {what}"
            else:
                button.disabled = not ready
                button.tooltip = what.capitalize() if ready else waiting

        self.cancel_button.disabled = job.done
        if job.done and self.cancel_button.layout.display != "none":
            self.cancel_button.layout.display = "none"  # nothing left to stop
        self.cancel_button.tooltip = "stop this job (deleted on the server where possible)"
        enable(self.remix_button, profile.capabilities.supports_remix, completed,
               "remix this video with the prompt on the left", later)
        enable(self.extend_button, profile.capabilities.supports_extend, completed,
               "extend this video by 4 s with the prompt on the left", later)
        refusal = job._retry_refusal() if job.done else None
        enable(self.retry_button, True, job.done and refusal is None, "run the same request again",
               refusal or "available once the job ends")
        deletable = job.done and job.remote_id is not None and not self._deleted
        enable(self.delete_button, profile.capabilities.supports_delete, deletable,
               "delete the server's copy (the files on disk stay)",
               "deleted on the server" if self._deleted else "available once the job ends")
        has_video = job.done and job.status == "completed" and job.video_path is not None
        if self.client is None:
            self.character_button.disabled = True
            self.character_button.tooltip = "open this card from sora_nb.ui.prompt(client) to make characters"
        else:
            enable(self.character_button, profile.capabilities.supports_characters, has_video and not self._making,
                   "make a character from the clip range, named as on the left",
                   "making the character…" if self._making else "available once the video is done")

    def _show_media(self) -> None:
        job = self.job
        video, poster = job.video_path, job.thumbnail_path
        if video is None:
            return
        self.link.value = _display.download_link_html(video)
        if self._media_mode == "url":
            show_html(self.media, _display.video_html(video, poster, preload="auto"))
            return
        self.media.children = (video_widget(video, too_large="; use the link", autoplay=False, loop=True,
                                            controls=True, layout=widgets.Layout(max_width="360px")),)

    # ------------------------------------------------------------------ actions (any thread)
    def _prompt_for(self, what: str) -> str:
        text: str = self.follow_up.value.strip()
        if not text:
            raise ValueError(f"Write what to change in the box on the left, then press {what}.")
        return text

    def _cancel(self) -> None:
        self.job._cancel_soon()  # a click waits for no loop (a running cell may hold it)

    def _remix(self) -> None:
        self._adopt(self.job.remix(self._prompt_for("Remix")))

    def _extend(self) -> None:
        self._adopt(self.job.extend(self._prompt_for("Extend"), seconds="4"))

    def _retry(self) -> None:
        self._adopt(self.job.retry())
        self._render_buttons()  # this job is retried now: its Retry is not offered twice

    def _delete(self) -> None:
        future = self.job.delete()
        self.delete_button.disabled = True

        def _done(f: Any) -> None:
            exc = f.exception()
            if exc is not None and not isinstance(exc, NotFoundError):
                self.error.show(exc)
                self.delete_button.disabled = False
                return
            # Not found: already gone (a cancel deletes the server's copy, a server expires old videos).
            self._deleted = True
            with held(self.delete_button, self.remix_button, self.extend_button):
                self._render_buttons()
                self.delete_button.description = "Deleted"

        future.add_done_callback(_done)

    def _make_character(self) -> None:
        """Cut the chosen range, upload it as a character (on the client's loop), show it when made."""
        if self.client is None:
            raise ValueError("This card has no client. Fix: open it from sora_nb.ui.prompt(client).")
        name = str(self.character_name.value).strip()
        if not name:
            raise ValueError("Name the character in the box on the left (then write that name in prompts).")
        low, high = (float(v) for v in self.character_range.value)
        future = self.client._runtime.submit(
            self.client.create_character_async(self.job, name, start=low, seconds=high - low))
        self._making = True
        self.character_button.disabled = True
        self.character_status.value = f"<i>making {html.escape(name)} from {low:g}-{high:g} s…</i>"

        def _done(f: Any) -> None:
            self._making = False
            exc = f.exception()
            if exc is not None:
                self.character_status.value = ""
                self.error.show(exc)
            else:
                character = f.result()
                if self._on_character is not None:  # told first: once the card shows it, it can be picked
                    self._on_character(character)
                self.character_status.value = _display.character_html(character)
                self.character_name.value = ""
            with held(self.character_button):
                self._render_buttons()

        future.add_done_callback(guarded(self.error, _done))

    def _adopt(self, job: Job) -> None:
        self.follow_up.value = ""
        if self._on_job is not None:
            self._on_job(job)
        else:
            card = JobCard(job, media=self._media_mode, refresh_interval=self._coalescer.interval,
                           client=self.client, on_character=self._on_character)
            self.derived.children = (card, *self.derived.children)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for card in getattr(getattr(self, "derived", None), "children", ()):
            card.close()
        super().close()

    def _static_title(self) -> str:
        return f"job {self.job.id}"

    def _static_jobs(self) -> list[Job]:
        return [self.job]

    def __repr__(self) -> str:
        return f"<JobCard {self.job!r}>"
