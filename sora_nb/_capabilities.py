"""What a server can do: the one description that validation, estimates, widgets, the CLI and the simulator read.

A profile (:mod:`sora_nb._profiles`) declares its server's :class:`Capabilities`; the per-model facts are
:class:`ModelSpec` values, kept in the tables of :mod:`sora_nb._catalog` so that the simulator's dialects
read the very same values. Nothing above the adapters asks which service it talks to: it asks the
capabilities (DESIGN.md invariant 4).

Unknown stays unknown: ``None`` for a model's sizes, durations or price means "not known" (nothing is
checked, widgets take free text, the estimate says "unknown"), never an invented list or a zero.

A new service declares its models and what it supports::

    KLING = {"kling-2.1": ModelSpec(sizes=("1280x720", "720x1280"), seconds=("5", "10"), usd_per_second=0.07,
                                    image_input=True, audio=False, price_source="fal.ai/models/..., 2026-11")}
    Capabilities(models=KLING, default_model="kling-2.1", supports_remix=False, supports_extend=False)

>>> caps = Capabilities(models={"m": ModelSpec(sizes=("1280x720",), seconds=("4", "8"), usd_per_second=0.1)},
...                     default_model="m")
>>> caps.model_names(), caps.sizes("m"), caps.seconds("m"), caps.cost_usd("m", "1280x720", "8")
(('m',), ('1280x720',), ('4', '8'), 0.8)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ._errors import ValidationError

__all__ = ["CONTRACT_DEFAULT_SECONDS", "CONTRACT_DEFAULT_SIZE", "Capabilities", "ModelSpec", "usd_cost"]

CONTRACT_DEFAULT_SIZE = "720x1280"
"""The size a request gets when it names none and the model allows it (the OpenAI contract's default)."""
CONTRACT_DEFAULT_SECONDS = "4"
"""The duration a request gets when it names none and the model allows it (the contract's default)."""


def usd_cost(usd_per_second: float | None, seconds: str | float | None) -> float | None:
    """Price × seconds: the one place a job's cost is computed (``None`` when either is unknown).

    >>> usd_cost(0.1, "8"), usd_cost(0.07, 15), usd_cost(None, "8"), usd_cost(0.1, "auto")
    (0.8, 1.05, None, None)
    """
    if usd_per_second is None or seconds is None:
        return None
    try:
        duration = float(seconds)
    except ValueError:
        return None
    if duration < 0:
        return None
    # Round away float noise (0.1 * 8 = 0.8000000000000002) without losing a real fraction of a cent.
    return round(usd_per_second * duration, 6)


@dataclass(frozen=True)
class ModelSpec:
    """What one model takes on one service, and what it costs there.

    Attributes:
        sizes: accepted sizes as ``WIDTHxHEIGHT``, in the order choosers offer them; ``None``: not known.
        seconds: accepted durations in whole seconds as strings (``"4"``), in order; ``None``: not known.
        usd_per_second: one price for every size, or a price per size; ``None`` (or a size missing from
            the mapping): not known, never zero.
        seconds_by_size: narrower durations at some sizes (Veo: 1080p and 4k only at 8 s).
        audio: the model generates sound; ``None``: not known.
        image_input: the model takes a reference image (``input_reference``); ``None``: not known.
        price_source: where and when the price was read (shown beside estimates and in docs).

    >>> veo = ModelSpec(sizes=("1280x720", "1920x1080"), seconds=("4", "8"), seconds_by_size={"1920x1080": ("8",)})
    >>> veo.seconds_at("1280x720"), veo.seconds_at("1920x1080"), ModelSpec().seconds_at("1280x720")
    (('4', '8'), ('8',), None)
    """

    sizes: tuple[str, ...] | None = None
    seconds: tuple[str, ...] | None = None
    usd_per_second: float | Mapping[str, float] | None = None
    seconds_by_size: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    audio: bool | None = None
    image_input: bool | None = None
    price_source: str | None = None

    def price(self, size: str) -> float | None:
        """USD per generated second at ``size``, or ``None`` when not known."""
        if self.usd_per_second is None or isinstance(self.usd_per_second, (int, float)):
            return self.usd_per_second
        return self.usd_per_second.get(size)

    def seconds_at(self, size: str | None) -> tuple[str, ...] | None:
        """The durations accepted at ``size`` (any size when ``None``)."""
        if size is not None and size in self.seconds_by_size:
            return self.seconds_by_size[size]
        return self.seconds


_UNKNOWN = ModelSpec()


@dataclass(frozen=True)
class Capabilities:
    """What a server can do, as its profile declares it (``client.profile.capabilities``).

    Attributes:
        models: the models the server is known to serve, in the order choosers offer them, each with its
            :class:`ModelSpec`; ``None``: nothing is known (the server's own model names, free text).
        default_model: the model a request gets when it names none.
        other_models: a name not in ``models`` is sent as given (a gateway routes names nobody lists);
            otherwise such a name is refused before sending. Always true when ``models`` is ``None``.
        aliases: other names of listed models (dated snapshots), accepted and checked as the model named.
        default_size, default_seconds: what a request gets when it names none, where the model allows them
            (else the model's first size or duration).
        reports_progress, reports_cost, supports_remix, supports_extend, supports_delete, supports_list,
        supports_thumbnail, supports_characters: what the server does; the toolkit degrades visibly where it
            cannot (characters: ``POST /videos/characters`` and ``characters=[...]`` in a create, OpenAI's
            contract only; no gateway or hosted service here forwards them).
        max_extensions: how many times a video can be extended (``None``: not known, not checked).
        reference_exact_size: a reference image must be exactly the video's size (OpenAI's contract);
            otherwise the service scales it, and only its format is checked.

    >>> from sora_nb._profiles import PROFILES
    >>> caps = PROFILES["gemini"].capabilities
    >>> caps.sizes("veo-3.1-generate-preview")[:2], caps.seconds("veo-3.1-generate-preview", "1920x1080")
    (('1280x720', '720x1280'), ('8',))
    >>> caps.price_per_second("veo-3.1-fast-generate-preview", "1280x720")
    0.15
    """

    models: Mapping[str, ModelSpec] | None
    default_model: str
    other_models: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)
    default_size: str = CONTRACT_DEFAULT_SIZE
    default_seconds: str = CONTRACT_DEFAULT_SECONDS
    reports_progress: bool = True
    reports_cost: bool = False
    supports_remix: bool = True
    supports_extend: bool = True
    supports_delete: bool = True
    supports_list: bool = True
    supports_thumbnail: bool = True
    supports_characters: bool = False
    max_extensions: int | None = None
    reference_exact_size: bool = False

    # ------------------------------------------------------------------ models
    @property
    def open_models(self) -> bool:
        """Any model name is taken (choosers offer free text): ``other_models``, or no models known."""
        return self.models is None or self.other_models

    @property
    def supports_input_reference(self) -> bool:
        """A create takes a reference image (a storyboard's continuity needs it): unless every model listed is
        declared without one (``ModelSpec.image_input=False``); not known counts as taken."""
        return self.models is None or any(spec.image_input is not False for spec in self.models.values())

    def model_names(self) -> tuple[str, ...]:
        """The models the server is known to serve, in order (empty when none is known)."""
        return tuple(self.models or ())

    def spec(self, model: str) -> ModelSpec | None:
        """The model's :class:`ModelSpec` (through ``aliases``), or ``None`` when the model is not listed."""
        models = self.models or {}
        return models.get(self.aliases.get(model, model))

    def sizes(self, model: str) -> tuple[str, ...] | None:
        """The sizes ``model`` accepts, or ``None`` when not known (an unlisted model: not known)."""
        return (self.spec(model) or _UNKNOWN).sizes

    def seconds(self, model: str, size: str | None = None) -> tuple[str, ...] | None:
        """The durations ``model`` accepts (at ``size`` when given), or ``None`` when not known."""
        return (self.spec(model) or _UNKNOWN).seconds_at(size)

    def default_size_for(self, model: str) -> str:
        """The size a request for ``model`` gets when it names none."""
        sizes = self.sizes(model)
        return self.default_size if not sizes or self.default_size in sizes else sizes[0]

    def default_seconds_for(self, model: str, size: str | None = None) -> str:
        """The duration a request for ``model`` (at ``size``) gets when it names none."""
        durations = self.seconds(model, size)
        return self.default_seconds if not durations or self.default_seconds in durations else durations[0]

    # ------------------------------------------------------------------ checks and prices
    def check(self, model: str, size: str | None, seconds: str | None) -> None:
        """Raise :class:`~sora_nb.ValidationError` when the server does not take these values (naming the
        field, the allowed values and the fix); pass what is not known, and skip a value given as ``None``.

        >>> from sora_nb._profiles import PROFILES
        >>> PROFILES["gemini"].capabilities.check("veo-3.1-generate-preview", "1280x720", "5")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sora_nb.ValidationError: seconds='5' is not allowed for veo-3.1-generate-preview. Allowed: '4', '6', '8'...
        """
        spec = self.spec(model)
        if spec is None:
            if self.open_models:
                return
            raise ValidationError(
                f"model={model!r} is not served here. Allowed: {_quoted(self.model_names())}. "
                f"Fix: pass one of them, e.g. model={self.default_model!r}.",
                field="model", allowed=self.model_names(),
            )
        if size is not None and spec.sizes is not None and size not in spec.sizes:
            larger = [m for m, s in (self.models or {}).items() if s.sizes and size in s.sizes]
            hint = f" ({size} would need {' or '.join(larger)})" if larger else ""
            raise ValidationError(
                f"size={size!r} is not allowed for {model}{hint}. Allowed: {_quoted(spec.sizes)}. "
                "Fix: pass one of them, or another model.",
                field="size", allowed=spec.sizes,
            )
        durations = spec.seconds_at(size)
        if seconds is not None and durations is not None and seconds not in durations:
            at = f" at {size}" if size in spec.seconds_by_size else ""
            raise ValidationError(
                f"seconds={seconds!r} is not allowed for {model}{at}. Allowed: {_quoted(durations)}. "
                f"Fix: pass one of them, e.g. seconds={durations[0]!r}.",
                field="seconds", allowed=durations,
            )

    def price_per_second(self, model: str, size: str) -> float | None:
        """USD per generated second of ``model`` at ``size``, or ``None`` when not known."""
        spec = self.spec(model)
        return None if spec is None else spec.price(size)

    def cost_usd(self, model: str, size: str, seconds: str | float) -> float | None:
        """The estimated cost of one job (:func:`usd_cost`), or ``None`` when the price is not known."""
        return usd_cost(self.price_per_second(model, size), seconds)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(map(repr, values))
