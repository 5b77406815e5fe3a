"""The arena: blind A/B votes between two videos of the same prompt that differ on one axis."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display_grid
from ._job import MediaMode, resolve_media, video_widget
from ._keys import Key, keys_hint
from ._sync import ErrorLine, Panel, guarded, show_html

if TYPE_CHECKING:
    from .._jobs import Job
    from .._run import Run

__all__ = ["Arena", "arena_html"]

_CHOICES = (("A is better", "a"), ("B is better", "b"), ("Tie", "tie"), ("Both bad", "both_bad"))
_KEYS = {"a": "a", "b": "b", "tie": "t", "both_bad": "x"}  # the key that casts each vote


class Arena(Panel):
    """Two videos of the same prompt (and the same other axes) that differ on ``by``, sides drawn at
    random, their labels hidden until the vote is cast, then revealed; buttons A / B / Tie / Both bad,
    Skip, Undo and Next. Each vote is stored with ``run.vote`` (durable, in the ledger).

    Pairs are chosen to be informative: the pairs compared fewest times first, then the closest in
    strength (see ``sora_nb._leaderboard.choose_pair``). Both videos play, pause and seek together
    (with ``media="bytes"`` too, as in VS Code).

    Keys (the widget clicked first; said on its hint line): ``a``, ``b``, ``t`` tie, ``x`` both bad,
    ``n`` next pair, ``s`` skip. Each presses the widget's own button. ``leaderboard=True`` shows
    ``run.leaderboard(by)`` below, redrawn after each vote.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
    >>> arena = run.arena(by="model", rater="ana", seed=1)
    >>> arena.vote("a")  # what the "A is better" button does
    >>> arena.votes, arena.revealed
    (1, True)
    >>> client.close()
    """

    def __init__(self, run: Run, *, by: str = "model", rater: str | None = None, width: int = 320,
                 media: MediaMode = "auto", seed: int | None = None, leaderboard: bool = False) -> None:
        import numpy as np

        if by not in [*run.axes, "prompt", "model", "size", "seconds", "style"]:
            raise ValueError(f"by={by!r} is not an axis of run {run.id}. Allowed: {', '.join(run.axes) or 'model'}.")
        self.run, self.by, self.rater, self.width = run, by, rater, width
        self.media_mode: MediaMode = resolve_media(media)
        self._rng = np.random.default_rng(seed)
        self.pair: tuple[Job, Job] | None = None
        self.revealed = False
        self.votes = 0
        self._skipped: set[frozenset[str]] = set()
        self.error = ErrorLine()
        self.header = widgets.HTML()
        self.stage: Any = widgets.Output() if self.media_mode == "url" else widgets.HBox()
        pair = self.stage  # with media="url" its HTML has the buttons and the synchronised players
        if self.media_mode == "bytes":  # ipywidgets' players: synchronised by handlers on the pair's box
            pair = widgets.VBox([widgets.HTML(_display_grid.compare_sync_html()), self.stage])
            pair.add_class("sora-nb-compare")
            pair.add_class("sora-nb-arena-pair")
        self.reveal = widgets.HTML()
        self.reveal.add_class("sora-nb-reveal")
        self.board = widgets.HTML()  # with leaderboard=True: run.leaderboard(by), redrawn after each vote
        self.board.add_class("sora-nb-leaderboard")
        self.show_leaderboard = leaderboard
        self.buttons = []
        for label, winner in _CHOICES:
            button = widgets.Button(description=label, layout=widgets.Layout(width="110px"),
                                    tooltip=f"{label} (key {_KEYS[winner]})")
            button.on_click(guarded(self.error, lambda _b, w=winner: self.vote(w)))
            button.add_class(f"sora-nb-vote-{winner}")
            self.buttons.append(button)
        self.skip_button = widgets.Button(description="Skip", layout=widgets.Layout(width="80px"))
        self.skip_button.on_click(guarded(self.error, lambda _b: self.skip()))
        self.undo_button = widgets.Button(description="Undo", layout=widgets.Layout(width="80px"))
        self.undo_button.on_click(guarded(self.error, lambda _b: self.undo()))
        self.next_button = widgets.Button(description="Next pair", button_style="primary",
                                          layout=widgets.Layout(width="110px"))
        self.next_button.on_click(guarded(self.error, lambda _b: self.next()))
        for button, name in ((self.skip_button, "skip"), (self.undo_button, "undo"), (self.next_button, "next")):
            button.add_class(f"sora-nb-{name}")
        self.key_hint = keys_hint("sora-nb-arena", [
            *(Key(_KEYS[w], f".sora-nb-vote-{w}", label if w in "ab" else label.lower()) for label, w in _CHOICES),
            Key("n", ".sora-nb-next", "next pair"), Key("s", ".sora-nb-skip", "skip"),
        ])
        controls = widgets.HBox([*self.buttons, self.skip_button, self.undo_button, self.next_button])
        super().__init__([self.header, pair, controls, self.key_hint, self.reveal, self.error, self.board])
        self.add_class("sora-nb-arena")
        self.next()

    def next(self) -> None:
        """Show the next pair (labels hidden)."""
        from .._leaderboard import choose_pair

        df = self.run._dataframe_of(self.run._videos())
        judgments = self.run.judgments().to_dict("records")
        chosen = choose_pair(df, judgments, by=self.by, rng=self._rng, skip=self._skipped)
        jobs = {job.id: job for job in self.run.jobs}
        self.pair = (jobs[chosen[0]], jobs[chosen[1]]) if chosen else None
        self.revealed = False
        # The vote buttons go disabled before the stage changes (Skip leaves them enabled on an unvoted pair):
        # a key pressed while the next pair is on its way is dropped, never cast on a pair not yet on screen.
        for button in self.buttons:
            button.disabled = True
        self._show()
        # Cleared once the new pair and its enabled buttons are sent: a front end applies a kernel's messages
        # in order, so a reveal seen cleared means the vote keys act (cleared first, a key pressed as soon as
        # it cleared met a still-disabled button and was dropped).
        self.reveal.value = ""
        self._draw_board()  # the run may have new videos (and others' votes) since
        self._refresh_static()

    def vote(self, winner: str) -> None:
        """Cast the vote for the pair shown (``"a"``, ``"b"``, ``"tie"`` or ``"both_bad"``), then reveal."""
        if self.pair is None or self.revealed:
            return
        a, b = self.pair
        self.run.vote(a, b, winner=winner, rater=self.rater)
        self.votes += 1
        self.revealed = True
        self._draw_header()
        said = dict((w, label) for label, w in _CHOICES)[winner]
        self.reveal.value = (f"<b>{html.escape(said)}</b> · A was <b>{html.escape(str(_value(a, self.by)))}</b>, "
                             f"B was <b>{html.escape(str(_value(b, self.by)))}</b>")
        self._enable()
        self._draw_board()
        self._refresh_static()

    def skip(self) -> None:
        """Do not vote on this pair now; show another."""
        if self.pair is not None:
            self._skipped.add(frozenset(job.id for job in self.pair))
        self.next()

    def undo(self) -> None:
        """Withdraw this rater's last vote (or anyone's, without a rater)."""
        if self.run.undo_judgment(rater=self.rater) is not None:
            self.votes = max(0, self.votes - 1)
            self.reveal.value = "<i>last vote withdrawn</i>"
            self._draw_header()
            self._draw_board()
            self._refresh_static()

    def _draw_board(self) -> None:
        if not self.show_leaderboard:
            return
        board = self.run.leaderboard(by=self.by)
        columns = [self.by, "strength", "ci_low", "ci_high", "wins", "losses", "ties", "n"]
        table = (_display_grid.table_html(board.to_dict("records"), columns, thumbnails=False) if len(board)
                 else "<br><i>no videos to rank yet</i>")
        self.board.value = (f"<b>Leaderboard by {html.escape(self.by)}</b> (Bradley-Terry strength from every vote of "
                            f"the run, 95 % interval){table}")

    def _done(self) -> str:
        return f"{self.votes} vote{'s' if self.votes != 1 else ''} this session"

    def _draw_header(self) -> None:
        """The question (or why there is none) and the votes cast: redrawn alone after a vote, since
        drawing the stage again would restart the videos."""
        done = self._done()
        if self.pair is None:
            self.header.value = (f"<b>No pair to compare on {html.escape(self.by)}</b> ({done}): the run needs two "
                                 "finished videos of the same prompt that differ on it (make them, then press "
                                 "Next pair).")
        else:
            state = "revealed below" if self.revealed else "hidden until you vote"
            self.header.value = (f"<b>Which is better?</b> {html.escape(str(self.pair[0].spec.prompt))} · "
                                 f"{html.escape(self.by)} {state} · {done}")

    def _show(self) -> None:
        self._draw_header()
        if self.pair is None:
            self._clear_stage()
            self._enable()
            return
        a, b = self.pair
        if self.media_mode == "url":
            show_html(self.stage, arena_html(a, b, width=self.width))
        else:
            self._clear_stage()
            self.stage.children = tuple(
                widgets.VBox([widgets.HTML(f"<b>{side}</b>"), video_widget(
                    job.video_path, controls=True, layout=widgets.Layout(width=f"{self.width}px"))])
                for side, job in (("A", a), ("B", b)) if job.video_path is not None
            )
        self._enable()

    def _clear_stage(self) -> None:
        if self.media_mode == "url":
            show_html(self.stage, "")
        else:
            for child in self.stage.children:
                child.close()
            self.stage.children = ()

    def _enable(self) -> None:
        waiting = self.pair is not None and not self.revealed
        for button in self.buttons:
            button.disabled = not waiting
        self.skip_button.disabled = self.pair is None

    def _static_title(self) -> str:
        return f"sora_nb arena by {self.by} · {self._done()}"

    def _static_jobs(self) -> list[Job]:
        # The pair only once its vote reveals it: a tile's caption names the model (and the other axes).
        return list(self.pair) if self.pair is not None and self.revealed else []

    def _static_extra(self) -> str:
        reveal = f'<div style="margin:6px 0">{self.reveal.value}</div>' if self.reveal.value else ""
        return reveal + str(self.board.value)

    def __repr__(self) -> str:
        return f"<Arena run={self.run.id} by={self.by!r} votes={self.votes}>"


def arena_html(a: Job, b: Job, *, width: int = 320) -> str:
    """The two videos side by side as A and B, played, paused and sought together, with nothing that
    names what they differ on (no caption: the comparison grid's captions would give the answer away)."""
    sides = "".join(
        f'<td style="padding:4px;vertical-align:top;text-align:left"><div style="font-weight:600">{side}</div>'
        f"{_display_grid.compare_video_html(job, width=width)}</td>"
        for side, job in (("A", a), ("B", b))
    )
    return (f'<div class="sora-nb-compare sora-nb-arena-pair"><div style="margin-bottom:6px">'
            f"{_display_grid.compare_buttons_html()}</div><table><tr>{sides}</tr></table></div>")


def _value(job: Job, name: str) -> Any:
    return job.spec.axes[name] if name in job.spec.axes else getattr(job.spec, name, None)
