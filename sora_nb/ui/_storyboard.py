"""The storyboard editor: a list of shots (prompt and length each), the estimate, Make, then the board live:
its progress over all shots, a strip of the shots' posters, the whole video, and Redo per shot."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _display
from ._choices import ANY_SECONDS, ANY_SIZE, ChoiceSlot, seconds_options, size_options
from ._sync import DEFAULT_INTERVAL, ErrorLine, Following, LiveBox, guarded, held

if TYPE_CHECKING:
    from .._client import Client
    from .._jobs import Job
    from .._storyboard import Storyboard

__all__ = ["StoryboardBuilder"]


class _ShotRow(widgets.HBox):  # type: ignore[misc]
    """One shot in the editor: its number, prompt, length, and the buttons that move, remove or redo it."""

    def __init__(self, prompt: str, seconds: str, choices: list[tuple[str, str]] | None,
                 on_change: Callable[[], None]) -> None:
        self.number = widgets.HTML("", layout=widgets.Layout(width="28px"))
        self.prompt = widgets.Textarea(value=prompt, placeholder="what happens in this shot",
                                       layout=widgets.Layout(width="420px", height="48px"))
        # The model's durations at the board's size, or free text where they are not known.
        self._seconds = ChoiceSlot(lambda: widgets.Dropdown(layout=widgets.Layout(width="80px")),
                                   lambda: widgets.Text(placeholder=ANY_SECONDS, layout=widgets.Layout(width="80px")),
                                   on_change)
        self.offer(choices, seconds)
        self.up = widgets.Button(icon="arrow-up", tooltip="move up", layout=widgets.Layout(width="36px"))
        self.down = widgets.Button(icon="arrow-down", tooltip="move down", layout=widgets.Layout(width="36px"))
        self.remove = widgets.Button(icon="trash", tooltip="remove this shot", layout=widgets.Layout(width="36px"))
        self.redo = widgets.Button(description="Redo", icon="redo", disabled=True,
                                   tooltip="once the board is made: make this shot again",
                                   layout=widgets.Layout(width="80px"))
        for button, name in ((self.up, "up"), (self.down, "down"), (self.remove, "remove"), (self.redo, "redo")):
            button.add_class(f"sora-nb-shot-{name}")
        self.prompt.add_class("sora-nb-shot-prompt")
        super().__init__([self.number, self.prompt, self._seconds, self.up, self.down, self.remove, self.redo])
        self.add_class("sora-nb-shot-row")

    @property
    def seconds(self) -> Any:
        """The shot's length field."""
        return self._seconds.widget

    def offer(self, choices: list[tuple[str, str]] | None, seconds: str) -> None:
        """Offer these lengths (``None``: free text), keeping ``seconds`` where it is one of them."""
        values = [value for _, value in choices or ()]
        self._seconds.show(choices, seconds if choices is None or seconds in values else values[0])

    def shot(self) -> dict[str, str]:
        return {"prompt": str(self.prompt.value).strip(), "seconds": str(self.seconds.value)}


class StoryboardBuilder(LiveBox):
    """Edit a storyboard's shots, see what it costs, make it, and follow it: live progress over all shots,
    the shots' posters, the joined video, and Redo per shot (edit the shot's prompt first).

    With continuity, Redo of a shot makes the shots after it again too: the first click says which and
    what they cost, and a second click (Confirm) goes ahead.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> builder = sora_nb.ui.storyboard(client, shots=[{"prompt": "a fox wakes"}, {"prompt": "it runs"}])
    >>> builder.shots()
    [{'prompt': 'a fox wakes', 'seconds': '4'}, {'prompt': 'it runs', 'seconds': '4'}]
    >>> board = builder.make()
    >>> board.wait(timeout=120).status
    'completed'
    >>> client.close()
    """

    def __init__(self, client: Client, *, shots: list[dict[str, Any]] | None = None, budget_usd: float = 10.0,
                 refresh_interval: float = DEFAULT_INTERVAL) -> None:
        self.client = client
        self.board: Storyboard | None = None
        self._asked: int | None = None  # the shot whose Redo waits for a Confirm
        caps = self._caps = client.profile.capabilities
        models = list(caps.model_names())
        model = caps.default_model
        wide = {"description_width": "80px"}
        self.error = ErrorLine()
        if caps.open_models:  # the server takes any name: free text, with the models it is known to serve
            self.model = widgets.Combobox(options=models, value=model, ensure_option=False, description="Model",
                                          placeholder="any model name this server takes", style=wide,
                                          layout=widgets.Layout(width="260px"))
        else:
            self.model = widgets.Dropdown(options=models, value=model, description="Model", style=wide,
                                          layout=widgets.Layout(width="260px"))
        self._size = ChoiceSlot(
            lambda: widgets.Dropdown(description="Size", style=wide, layout=widgets.Layout(width="260px")),
            lambda: widgets.Text(description="Size", placeholder=ANY_SIZE, style=wide,
                                 layout=widgets.Layout(width="260px")),
            guarded(self.error, self._size_changed))
        sizes = caps.sizes(model)
        # Landscape first where the model takes it: a storyboard is most often a film.
        self._size.show(size_options(sizes), "1280x720" if sizes is None or "1280x720" in sizes
                        else caps.default_size_for(model))
        self.mode = widgets.ToggleButtons(options=[("Stitch", "stitch"), ("Extend", "extend")], value="stitch",
                                          tooltips=["each shot made on its own, joined here",
                                                    "each shot extends the video before it"])
        self.continuity = widgets.Checkbox(value=True, description="Continuity (each shot starts from the last)",
                                           indent=False, layout=widgets.Layout(width="320px"))
        self.budget = widgets.BoundedFloatText(value=budget_usd, min=0.0, max=1e6, step=1.0, description="Budget $",
                                               style=wide, layout=widgets.Layout(width="180px"))
        self.rows = widgets.VBox([])
        self.add_button = widgets.Button(description="Add shot", icon="plus")
        self.summary = widgets.HTML("")
        self.summary.add_class("sora-nb-summary")
        self.make_button = widgets.Button(description="Make", icon="film", button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="warning", disabled=True)
        self.confirm = widgets.HTML("")
        self.confirm.add_class("sora-nb-confirm")
        self.confirm_button = widgets.Button(description="Confirm", icon="check", button_style="danger",
                                             layout=widgets.Layout(display="none"))
        for button, name in ((self.add_button, "add-shot"), (self.make_button, "make"),
                             (self.cancel_button, "cancel"), (self.confirm_button, "confirm-redo")):
            button.add_class(f"sora-nb-{name}")
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, bar_style="info",
                                         layout=widgets.Layout(width="320px"))
        self.bar.add_class("sora-nb-bar")
        self.strip = widgets.HTML("")
        self.strip.add_class("sora-nb-storyboard-strip")
        self.player = widgets.Output()
        self.player.add_class("sora-nb-storyboard-player")
        super().__init__([
            widgets.HBox([self.model, self._size, self.budget], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.mode, self.continuity], layout=widgets.Layout(flex_flow="row wrap")),
            self.rows, self.add_button, self.summary,
            widgets.HBox([self.make_button, self.cancel_button]),
            widgets.HBox([self.confirm, self.confirm_button]),
            self.error, widgets.HBox([self.bar]), self.strip, self.player,
        ])
        self.add_class("sora-nb-storyboard-builder")
        for shot in shots or [{"prompt": ""}, {"prompt": ""}]:
            self._add(str(shot.get("prompt", "")), str(shot.get("seconds") or self._default_seconds()))
        for editor in (self.model, self.mode, self.continuity, self.budget):
            editor.observe(self._guard(lambda _c: self._update()), "value")
        self.model.observe(self._guard(lambda _c: self._model_changed()), "value")
        self.add_button.on_click(self._guard(lambda _b: self.add()))
        self.make_button.on_click(self._guard(lambda _b: self.make()))
        self.cancel_button.on_click(self._guard(lambda _b: self.board._cancel_soon() if self.board else None))
        self.confirm_button.on_click(self._guard(lambda _b: self._confirmed()))
        self._follow(client._runtime, None, self._render, interval=refresh_interval,
                     tick=lambda: None if self.board is None or self.board.done else 1.0)
        self._update()

    def _guard(self, fn: Callable[[Any], Any]) -> Callable[..., None]:
        return guarded(self.error, fn)

    # ------------------------------------------------------------------ the shot list
    def _add(self, prompt: str, seconds: str) -> _ShotRow:
        row = _ShotRow(prompt, seconds, seconds_options(self._durations()), guarded(self.error, self._update))
        row.prompt.observe(self._guard(lambda _c: self._update()), "value")
        row.up.on_click(self._guard(lambda _b: self.move(self._index(row), -1)))
        row.down.on_click(self._guard(lambda _b: self.move(self._index(row), +1)))
        row.remove.on_click(self._guard(lambda _b: self.remove(self._index(row))))
        row.redo.on_click(self._guard(lambda _b: self.redo(self._index(row) + 1)))
        self.rows.children = (*self.rows.children, row)
        return row

    def _index(self, row: _ShotRow) -> int:
        return list(self.rows.children).index(row)

    def add(self, prompt: str = "", seconds: str | None = None) -> None:
        """Add a shot at the end (its length: the model's default at the board's size unless given)."""
        self._add(prompt, str(seconds or self._default_seconds()))
        self._update()

    def remove(self, index: int) -> None:
        """Remove the shot at ``index`` (0-based); a board keeps at least one."""
        rows = list(self.rows.children)
        if len(rows) == 1:
            raise ValueError("a storyboard needs at least one shot. Fix: edit this one instead.")
        rows.pop(index).close()
        self.rows.children = tuple(rows)
        self._update()

    def move(self, index: int, by: int) -> None:
        """Move the shot at ``index`` (0-based) up (``by=-1``) or down (``+1``)."""
        rows = list(self.rows.children)
        target = index + by
        if 0 <= target < len(rows):
            rows[index], rows[target] = rows[target], rows[index]
            self.rows.children = tuple(rows)
            self._update()

    def shots(self) -> list[dict[str, str]]:
        """The shots as ``client.storyboard`` takes them."""
        return [row.shot() for row in self.rows.children]

    @property
    def size(self) -> Any:
        """The board's size field: the model's sizes, or free text where they are not known."""
        return self._size.widget

    def _durations(self) -> tuple[str, ...] | None:
        return self._caps.seconds(str(self.model.value or ""), str(self.size.value))

    def _default_seconds(self) -> str:
        return self._caps.default_seconds_for(str(self.model.value or ""), str(self.size.value))

    def _model_changed(self) -> None:
        """The model changed: offer its sizes (keeping the size where it can), then its lengths."""
        model = str(self.model.value or "")
        sizes = self._caps.sizes(model)
        value = str(self.size.value)
        self._size.show(size_options(sizes), value if sizes is None or value in sizes
                        else self._caps.default_size_for(model))
        self._size_changed()

    def _size_changed(self) -> None:
        """Each shot's lengths follow the model at the board's size (Veo: 8 s only above 720p)."""
        choices, default = seconds_options(self._durations()), self._default_seconds()
        for row in self.rows.children:
            row.offer(choices, str(row.seconds.value) or default)
        self._update()

    # ------------------------------------------------------------------ estimate and making
    @property
    def budget_usd(self) -> float | None:
        value = float(self.budget.value)
        return value if value > 0 else None

    def _update(self) -> None:
        for number, row in enumerate(self.rows.children, 1):
            row.number.value = f"<b>{number}</b>"
        self.continuity.disabled = self.mode.value == "extend"  # extensions are continuous by nature
        try:
            estimate = self.client.estimate_storyboard(self.shots(), model=str(self.model.value),
                                                       size=str(self.size.value), mode=str(self.mode.value))
        except (ValueError, TypeError) as exc:
            self.summary.value = f'<div style="color:#c62828">{html.escape(str(exc))}</div>'
            self.make_button.disabled = True
            return
        spend = estimate.cost_usd if estimate.cost_usd is not None else estimate.known_cost_usd
        budget = self.budget_usd
        over = budget is not None and spend > budget + 1e-9
        verdict = ("no budget" if budget is None else
                   f'<b style="color:#c62828">over the budget of ${budget:,.2f}</b>' if over else
                   f"within the budget of ${budget:,.2f}")
        self.summary.value = f"<div><b>{html.escape(str(estimate))}</b> · {verdict}</div>"
        running = self.board is not None and not self.board.done
        self.make_button.disabled = over or running

    def make(self) -> Storyboard:
        """What Make does: start the board the editor describes (refused over budget) and follow it."""
        if self.board is not None and not self.board.done:
            raise ValueError(f"storyboard {self.board.storyboard_id} is still being made. Fix: wait, or Cancel it.")
        board = self.client.storyboard(self.shots(), model=str(self.model.value), size=str(self.size.value),
                                       mode=str(self.mode.value), continuity=bool(self.continuity.value),
                                       budget_usd=self.budget_usd)
        if self._following is not None:  # the last board: no longer followed (the redraws go on, for the new one)
            self._runtime.call(self._following.end)
        self.board = board
        self._following = Following(board, self._coalescer)
        self._update()
        self._coalescer.mark()
        return board

    def redo(self, shot: int) -> None:
        """What a shot's Redo does: make it again with the prompt and length in its row. Where that makes the
        later shots again too (continuity), say so and show the cost first: Confirm goes ahead."""
        board = self._made()
        fields = self.shots()[shot - 1]
        try:
            board.redo(shot, prompt=fields["prompt"], seconds=fields["seconds"])
        except ValueError as exc:
            if "confirm=True" not in str(exc):
                raise
            self._asked = shot
            self.confirm.value = f'<span style="color:#c62828">{html.escape(str(exc).split(" Fix:")[0])}</span>'
            self.confirm_button.layout.display = None
            return
        self._redone()

    def _confirmed(self) -> None:
        board, shot = self._made(), self._asked
        if shot is None:
            raise ValueError("nothing to confirm: press a shot's Redo first.")
        fields = self.shots()[shot - 1]
        board.redo(shot, prompt=fields["prompt"], seconds=fields["seconds"], confirm=True)
        self._redone()

    def _redone(self) -> None:
        self._asked = None
        self.confirm.value = ""
        self.confirm_button.layout.display = "none"
        self._update()
        self._coalescer.mark()

    def _made(self) -> Storyboard:
        if self.board is None:
            raise ValueError("nothing to redo yet. Fix: Make the storyboard first.")
        return self.board

    # ------------------------------------------------------------------ following the board (on the loop)
    def _render(self) -> None:
        board = self.board
        if board is None:
            return
        value, style = float(board.progress), {"completed": "success", "failed": "danger"}.get(board.status, "info")
        # The Redo buttons before the bar: a front end applies the messages in order, so a bar seen green means
        # Redo can be pressed (after it, a Redo clicked as the bar turned green met a disabled button).
        matches = len(self.rows.children) == len(board.plan["shots"])
        for row in self.rows.children:
            row.redo.disabled = not (board.done and matches)
        with held(self.bar, self.cancel_button, self.make_button):
            self.bar.value = value
            self.bar.bar_style = style
            self.cancel_button.disabled = board.done
            self.make_button.disabled = not board.done
        self.strip.value = _display.storyboard_strip_html(board)
        self._show_changed(self.player, _display.video_html(board.video_path, board.thumbnail_path, width=480))
        if board.done:
            self._update()

    def _static_title(self) -> str:
        return "sora_nb storyboard" + (f" {self.board.storyboard_id}: {self.board.status}" if self.board else "")

    def _static_jobs(self) -> list[Job]:
        if self.board is None:
            return []
        return [job for job in (*self.board.shots, self.board.stitched) if job is not None]

    def __repr__(self) -> str:
        board = self.board.storyboard_id if self.board is not None else None
        shots = len(self.rows.children)
        return f"<StoryboardBuilder profile={self.client.profile.name!r} shots={shots} board={board!r}>"
