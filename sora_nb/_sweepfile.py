"""Sweep files: a sweep written as YAML or JSON, read into ``expand()`` arguments and run options.

``sora-nb sweep FILE`` and ``sora_nb.load_sweep_file`` read them; nothing here sends a request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._grid import EXPAND_KEYS, did_you_mean

__all__ = ["load_sweep_file"]

_RUN_KEYS = ("max_concurrency", "budget_usd", "run_dir", "profile", "base_url")
"""The keys of a sweep file that say how to run it, besides the ``expand()`` arguments."""
_BOARD_KEYS = ("storyboard", "mode", "continuity")
"""The keys of a sweep of storyboards (``client.sweep(storyboard=...)``), besides model, size and repeats."""


def load_sweep_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sweep file (``.yaml``, ``.yml`` or ``.json``) into ``expand()`` arguments plus run options.

    The file is one mapping. Its keys are the arguments of :func:`expand` (``prompt``, ``model``,
    ``size``, ``seconds``, ``style``, ``repeats``, ``input_reference``, ``template``, ``variables``,
    ``rows``, ``strict``, ``characters``: a list of character ids from ``client.characters()``, ``null`` for
    none) and, optionally, how to run it: ``max_concurrency``, ``budget_usd``,
    ``run_dir``, ``profile``, ``base_url``. Relative paths are kept as written (relative to the
    current directory, like command-line options). An example::

        # grid.yaml: 2 animals x 2 times x 2 models x 2 durations = 16 jobs
        template: "a {animal} surfing at {time}, in {style} style"
        variables:
          animal: [corgi, cat]
          time: [dawn, dusk]
        model: [sora-2, sora-2-pro]
        seconds: [4, 8]
        size: 1280x720
        style: cinematic
        budget_usd: 20
        max_concurrency: 4

    A storyboard on two models (a sweep of storyboards: ``storyboard``, then ``model``, ``size``,
    ``mode``, ``continuity``, ``repeats``)::

        storyboard:
          - {prompt: "a fox wakes in a meadow", seconds: 4}
          - {prompt: "the fox runs to the river", seconds: 4}
        model: [sora-2, sora-2-pro]

    Rows instead of a grid::

        rows:
          - {prompt: "a corgi surfing", model: sora-2-pro, size: 1792x1024}
          - {prompt: "a cat skiing", seconds: 8}

    Returns:
        The ``expand()`` keyword arguments, plus the key ``"run"``: a dict of the run options given
        (possibly empty). Use it as ``spec = load_sweep_file(p); run = spec.pop("run"); expand(**spec)``.

    Raises:
        ValueError: An unknown suffix or key, a file that is not one mapping, or a run option of the
            wrong type.
        ImportError: A YAML file without PyYAML installed (``pip install "sora-nb[yaml]"``).
        OSError: The file cannot be read.

    >>> import sora_nb
    >>> path = getfixture("tmp_path") / "grid.json"
    >>> _ = path.write_text('{"prompt": ["a corgi surfing", "a cat skiing"], "seconds": 4, "budget_usd": 5}')
    >>> spec = sora_nb.load_sweep_file(path)
    >>> spec.pop("run"), spec
    ({'budget_usd': 5}, {'prompt': ['a corgi surfing', 'a cat skiing'], 'seconds': 4})
    >>> with sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path")) as client:
    ...     print(client.sweep(**spec).estimate())
    2 jobs, 8 s of video, est. $0.80
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(
            f"sweep file {str(file)!r} has suffix {file.suffix or '(none)'!r}. Fix: use a .yaml, .yml or .json file."
        )
    text = file.read_text(encoding="utf-8")
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"sweep file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}. Fix: correct the file (or write it as YAML)."
            ) from None
    else:
        try:
            import yaml
        except ImportError:
            raise ImportError(
                f'Reading the YAML sweep file {str(file)!r} needs PyYAML. Fix: pip install "sora-nb[yaml]" '
                "(or write the sweep as .json)."
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"sweep file {str(file)!r} is not valid YAML: {exc}. Fix: correct the file.") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"sweep file {str(file)!r} must hold one mapping of settings (e.g. 'prompt: ...'), "
            f"got {type(data).__name__}. Fix: see the example in sora_nb.load_sweep_file's documentation."
        )
    allowed = (*EXPAND_KEYS, *_BOARD_KEYS, *_RUN_KEYS)
    spec: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for key, value in data.items():
        if key in _RUN_KEYS:
            run[key] = _check_run_option(key, value, file)
        elif key in EXPAND_KEYS or key in _BOARD_KEYS:
            spec[key] = value
        else:
            raise ValueError(
                f"sweep file {str(file)!r} has unknown key {key!r}{did_you_mean(key, allowed)}. "
                f"Allowed keys: {', '.join(allowed)}."
            )
    spec["run"] = run
    return spec


def _check_run_option(key: str, value: Any, file: Path) -> Any:
    where = f"sweep file {str(file)!r}"
    if key == "max_concurrency":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: max_concurrency must be a whole number of at least 1, got {value!r}.")
    elif key == "budget_usd":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
            raise ValueError(f"{where}: budget_usd must be a number of US dollars (0 or more), got {value!r}.")
    elif value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string, got {value!r}.")
    return value
