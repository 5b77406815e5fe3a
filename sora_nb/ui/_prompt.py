"""The prompt box: write a prompt, pick the options the server offers, see the cost, generate."""

from __future__ import annotations

import hashlib
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import _catalog, _display
from .._redact import redact_url
from .._styles import STYLES
from .._validation import parse_size
from ._choices import ANY_SECONDS, ANY_SIZE, ChoiceSlot, cost_text, seconds_options, size_options
from ._job import JobCard, MediaMode
from ._sync import DEFAULT_INTERVAL, ErrorLine, Panel, guarded

if TYPE_CHECKING:
    from .._client import Client
    from .._jobs import Job
    from .._types import Character

__all__ = ["PromptBox"]

_NO_STYLE = "(none)"
_PICK = "Add a character…"


def no_characters_reason(client: Client) -> str:
    """Why the character controls are disabled for ``client``'s server, or ``""`` when they are not."""
    if client.profile.capabilities.supports_characters:
        return ""
    return f"the {client.profile.name!r} server has no characters (cameos)"


def insert_name(prompt: str, name: str) -> str:
    """``prompt`` with ``name`` in it: as it is when already there, else added at the end.

    >>> insert_name("", "Ada"), insert_name("walks in the rain", "Ada"), insert_name("Ada waves", "Ada")
    ('Ada', 'walks in the rain Ada', 'Ada waves')
    """
    if name in prompt:
        return prompt
    return f"{prompt.rstrip()} {name}".strip()


def fit_image(data: bytes, size: str) -> bytes:
    """The image cropped to the aspect ratio of ``size`` and resized to it, as PNG (Pillow's ``fit``)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        fitted = ImageOps.fit(image.convert("RGB"), parse_size(size), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    fitted.save(out, format="PNG")
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError):
        return None


class PromptBox(Panel):
    """A prompt, the server's options, a live cost estimate, a reference image and a Generate button.

    The choosers come from the client's profile's capabilities only: its models (free text where the
    server takes any name), and for the chosen model exactly its sizes and, at the chosen size, its
    durations (free text saying "any" where they are not known); then the style presets. Each Generate
    adds a :class:`JobCard` at the top of the list below. The character picker lists the server's
    characters (``client.characters()``): picking one writes its name into the prompt and sends it with the
    next Generate (two at most); a card's "Make character" adds to it. On a server without characters the
    picker is disabled and says why.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> box = sora_nb.ui.prompt(client)
    >>> box.model.value, box.cost.value
    ('sora-2', 'est. $0.40 (4 s × $0.10/s)')
    >>> client.close()
    """

    def __init__(
        self,
        client: Client,
        *,
        prompt: str = "",
        model: str | None = None,
        media: MediaMode = "auto",
        refresh_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.client = client
        self.jobs: list[Job] = []
        self._media: MediaMode = media
        self._interval = refresh_interval
        self._reference: Path | None = None
        self._upload: tuple[str, bytes] | None = None
        profile = client.profile
        caps = self._caps = profile.capabilities
        models = list(caps.model_names())
        if model is not None and not caps.open_models and model not in models:
            raise ValueError(f"model={model!r} is not offered by the {profile.name!r} server. "
                             f"Allowed: {', '.join(models)}. Fix: pass one of them, or no model for the server's "
                             "default.")
        chosen = model or caps.default_model
        wide = {"description_width": "70px"}

        self.prompt = widgets.Textarea(value=prompt, placeholder="Describe the video: subject, action, setting, light…",
                                       layout=widgets.Layout(width="100%", height="80px"))
        self.prompt.add_class("sora-nb-prompt-text")
        self.error = ErrorLine()
        if caps.open_models:  # the server takes any name: free text, with the models it is known to serve
            self.model = widgets.Combobox(options=models, value=chosen, ensure_option=False,
                                          placeholder="any model name this server takes", description="Model",
                                          style=wide)
        else:
            self.model = widgets.Dropdown(options=models, value=chosen, description="Model", style=wide)
        self._size = ChoiceSlot(
            lambda: widgets.Dropdown(description="Size", style=wide),
            lambda: widgets.Text(description="Size", placeholder=ANY_SIZE, style=wide),
            guarded(self.error, self._update_seconds))
        self._seconds = ChoiceSlot(
            lambda: widgets.ToggleButtons(description="Duration", style={**wide, "button_width": "52px"}),
            lambda: widgets.Text(description="Duration", placeholder=ANY_SECONDS, style=wide),
            guarded(self.error, self._update_cost))
        self.style = widgets.Dropdown(options=[_NO_STYLE, *STYLES], value=_NO_STYLE, description="Style", style=wide)
        self.style_hint = widgets.HTML("")
        self.cost = widgets.HTML("")
        self.cost.add_class("sora-nb-cost")
        self.upload = widgets.FileUpload(accept="image/png,image/jpeg,image/webp", multiple=False,
                                         description="Reference image", layout=widgets.Layout(width="auto"))
        self.reference_status = widgets.HTML("")
        self.fit_button = widgets.Button(description="Crop & resize", icon="crop", layout=widgets.Layout(
            width="auto", display="none"))
        self.clear_reference = widgets.Button(description="Remove", icon="times", layout=widgets.Layout(
            width="auto", display="none"))
        self.cast: list[Character] = []
        self.character_picker = widgets.Dropdown(description="Cast", style=wide,
                                                 layout=widgets.Layout(width="300px"))
        self.character_picker.add_class("sora-nb-character-picker")
        self.cast_view = widgets.HTML("")
        self.cast_view.add_class("sora-nb-cast")
        self.clear_cast = widgets.Button(description="No characters", icon="times",
                                         layout=widgets.Layout(width="auto", display="none"))
        self.refresh_characters()
        self.generate_button = widgets.Button(description="Generate", icon="play", button_style="primary")
        self.generate_button.add_class("sora-nb-generate")
        self.cards = widgets.VBox([])
        self.cards.add_class("sora-nb-cards")

        header = widgets.HTML(
            f'<div style="opacity:.7">server: {html.escape(profile.name)}'
            + (f" · {html.escape(redact_url(client.base_url))}" if client.base_url else "") + "</div>"
        )
        super().__init__([
            header,
            self.prompt,
            widgets.HBox([self.model, self._size], layout=widgets.Layout(flex_flow="row wrap")),
            self._seconds,
            widgets.HBox([self.style, self.style_hint], layout=widgets.Layout()),
            widgets.HBox([self.character_picker, self.cast_view, self.clear_cast],
                         layout=widgets.Layout(align_items="center", flex_flow="row wrap")),
            widgets.HBox([self.upload, self.fit_button, self.clear_reference, self.reference_status],
                         layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.generate_button, self.cost], layout=widgets.Layout(align_items="center")),
            self.error,
            self.cards,
        ])
        self.add_class("sora-nb-prompt")

        self._update_choices()
        self.model.observe(guarded(self.error, lambda _c: self._update_choices()), "value")
        self.style.observe(guarded(self.error, lambda _c: self._update_style()), "value")
        self.upload.observe(guarded(self.error, self._uploaded), "value")
        self.fit_button.on_click(guarded(self.error, lambda _b: self._fit_reference()))
        self.clear_reference.on_click(guarded(self.error, lambda _b: self._set_reference(None)))
        self.generate_button.on_click(guarded(self.error, lambda _b: self.generate()))
        self.character_picker.observe(guarded(self.error, self._picked), "value")
        self.clear_cast.on_click(guarded(self.error, lambda _b: self._set_cast([])))

    # ------------------------------------------------------------------ characters
    def refresh_characters(self) -> None:
        """List the server's characters in the picker again (after one was made)."""
        reason = no_characters_reason(self.client)
        known = [] if reason else self.client.characters()
        with self.character_picker.hold_sync():
            self.character_picker.options = [(_PICK, ""), *((f"{c.name} ({c.id})", c.id or "") for c in known)]
            self.character_picker.value = ""
            self.character_picker.disabled = bool(reason) or not known
            self.character_picker.tooltip = (reason or ("no characters yet: make one with a finished video's "
                                                        "'Make character'" if not known else
                                                        "adds the character to the prompt and the next video"))
        if reason:
            self.cast_view.value = f'<i style="opacity:.7">characters: {html.escape(reason)}</i>'

    def _picked(self, change: dict[str, Any]) -> None:
        character_id = change["new"]
        if not character_id:
            return
        self.character_picker.value = ""
        character = next((c for c in self.client.characters() if c.id == character_id), None)
        if character is None or character.name is None:
            raise ValueError(f"character {character_id} is no longer listed. Fix: make it again.")
        if any(c.id == character.id for c in self.cast):
            return
        if len(self.cast) >= _catalog.MAX_CHARACTERS:
            raise ValueError(f"A video takes at most {_catalog.MAX_CHARACTERS} characters. "
                             "Fix: press 'No characters' and pick again.")
        self.prompt.value = insert_name(str(self.prompt.value), character.name)
        self._set_cast([*self.cast, character])

    def _set_cast(self, cast: list[Character]) -> None:
        self.cast = cast
        # The chips last: a front end applies the kernel's messages in order, so a chip seen means that
        # "No characters" shows beside it (it followed the chips, and could still be hidden when they showed).
        self.clear_cast.layout.display = None if cast else "none"
        self.cast_view.value = "".join(_display.character_html(c) for c in cast)

    def _character_made(self, character: Character) -> None:
        del character  # listed by the registry, which the picker reads
        self.refresh_characters()

    # ------------------------------------------------------------------ choosers (pure view updates)
    @property
    def size(self) -> Any:
        """The size field: a chooser of the chosen model's sizes, or free text where they are not known."""
        return self._size.widget

    @property
    def seconds(self) -> Any:
        """The duration field: the durations of the chosen model at the chosen size, or free text."""
        return self._seconds.widget

    def _update_choices(self) -> None:
        """The model changed: offer its sizes (keeping the size chosen when it still can be), then durations."""
        model = str(self.model.value or "")
        sizes = self._caps.sizes(model)
        current = self.size.value if self.size is not None else None
        keep = current if current and (sizes is None or current in sizes) else None
        self._size.show(size_options(sizes), keep or self._caps.default_size_for(model))
        spec = self._caps.spec(model)
        self.upload.disabled = spec is not None and spec.image_input is False  # None: not known, so allowed
        self._update_seconds()

    def _update_seconds(self) -> None:
        """The model or the size changed: offer the durations of that model at that size."""
        model, size = str(self.model.value or ""), str(self.size.value)
        durations = self._caps.seconds(model, size)
        current = self.seconds.value if self.seconds is not None else None
        keep = current if current and (durations is None or current in durations) else None
        self._seconds.show(seconds_options(durations), keep or self._caps.default_seconds_for(model, size))
        self._update_cost(check_reference=True)

    def _update_cost(self, *, check_reference: bool = False) -> None:
        text = cost_text(self._caps, str(self.model.value or ""), str(self.size.value), str(self.seconds.value))
        self.cost.value = html.escape(text)
        if check_reference and self._upload is not None:
            self._check_reference()

    def _update_style(self) -> None:
        style = self.style.value
        self.style_hint.value = "" if style == _NO_STYLE else f'<i style="opacity:.7">{html.escape(STYLES[style])}</i>'

    # ------------------------------------------------------------------ reference image
    def _uploaded(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name, data = str(item["name"]), bytes(item["content"])
        # The bytes are held here and written to a file; the widget's copy is dropped at once.
        self.upload.value = ()
        self._upload = (name, data)
        self._check_reference()

    def _check_reference(self) -> None:
        assert self._upload is not None
        name, data = self._upload
        dims = image_size(data)
        size = str(self.size.value)
        if dims is None:
            self._upload = None
            self._set_reference(None)
            raise ValueError(f"{name} is not an image Pillow can read. Fix: upload a PNG, JPEG or WebP file.")
        if not self._caps.reference_exact_size:  # the service scales the image itself
            self._set_reference(self._save(data, name))
            self.reference_status.value = f"✓ {html.escape(name)} ({dims[0]}×{dims[1]}, scaled by the server)"
            return
        want = parse_size(size)
        if dims == want:
            self._set_reference(self._save(data, name))
            self.reference_status.value = f"✓ {html.escape(name)} ({dims[0]}×{dims[1]})"
            return
        self._set_reference(None, keep_upload=True)
        self.reference_status.value = (
            f'<span style="color:#ef6c00">{html.escape(name)} is {dims[0]}×{dims[1]} but the size is '
            f"{want[0]}×{want[1]}: crop and resize it, pick another size, or remove it.</span>")
        self.fit_button.description = f"Crop & resize to {want[0]}×{want[1]}"
        self.fit_button.layout.display = None

    def _fit_reference(self) -> None:
        if self._upload is None:
            raise ValueError("Upload a reference image first.")
        name, data = self._upload
        fitted = fit_image(data, str(self.size.value))
        stem = Path(name).stem
        self._upload = (f"{stem}-{self.size.value}.png", fitted)
        self._check_reference()

    def _save(self, data: bytes, name: str) -> Path:
        folder = self.client.run_root / "references"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = Path(name).suffix.lower() or ".png"
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    def _set_reference(self, path: Path | None, *, keep_upload: bool = False) -> None:
        self._reference = path
        if path is None and not keep_upload:
            self._upload = None
            self.reference_status.value = ""
        self.fit_button.layout.display = "none"
        self.clear_reference.layout.display = None if (path is not None or keep_upload) else "none"

    @property
    def reference(self) -> Path | None:
        """The checked reference image file (matching the chosen size), or ``None``."""
        return self._reference

    # ------------------------------------------------------------------ generating
    def generate(self) -> Job:
        """What the Generate button does: start a job with the chosen options and add its card."""
        if self._upload is not None and self._reference is None:
            raise ValueError("The reference image does not match the size. Fix: Crop & resize, or Remove it.")
        style = None if self.style.value == _NO_STYLE else str(self.style.value)
        job = self.client.generate(
            str(self.prompt.value), model=str(self.model.value), size=str(self.size.value),
            seconds=str(self.seconds.value), style=style, input_reference=self._reference,
            characters=list(self.cast),
        )
        self.add_job(job)
        return job

    def add_job(self, job: Job) -> JobCard:
        """Show ``job`` as a card at the top of the list (cards of remixes, extensions and retries too)."""
        self.jobs.append(job)
        card = JobCard(job, on_job=self.add_job, media=self._media, refresh_interval=self._interval,
                       client=self.client, on_character=self._character_made)
        self.cards.children = (card, *self.cards.children)
        return card

    def close(self) -> None:
        for card in getattr(getattr(self, "cards", None), "children", ()):
            card.close()
        super().close()

    def _static_title(self) -> str:
        return "sora_nb prompt box"

    def _static_jobs(self) -> list[Job]:
        return list(reversed(self.jobs))  # newest first, as the cards

    def __repr__(self) -> str:
        return f"<PromptBox profile={self.client.profile.name!r} model={self.model.value!r} jobs={len(self.jobs)}>"
