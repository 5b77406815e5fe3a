"""The simulator inside a client's process: the configuration ``sora_nb.connect`` runs it with, and where
its jobs live on disk, so that a kernel restart (``sora_nb.resume``) finds them again as on a real server.

This is the simulator's own policy; the client asks for it through these functions and knows no more.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import httpx

from ._config import SimulatorConfig
from ._persist import state_file
from ._transport import SimulatorTransport

__all__ = ["DEFAULT_TIME_SCALE", "STATE_DIR_NAME", "in_process_config", "run_state_dir", "served_state_dir"]

DEFAULT_TIME_SCALE = 0.02
"""The in-process simulator's speed unless ``time_scale`` is given: 50 times real-world timing, so a demo or a
script's 4 s clip (about a minute on a real service) takes a second or two. ``time_scale=1`` is realistic."""

STATE_DIR_NAME = ".simulator"
"""Where, under a client's ``run_root``, the in-process simulator keeps its jobs (``SimulatorConfig.state_dir``)."""


def in_process_config(
    simulator: SimulatorConfig | bool | None,
    *,
    profile: str,
    dialect: str,
    strict_models: bool,
    seed: int | None,
    time_scale: float | None,
    state: str | os.PathLike[str] | bool | None,
    run_root: Path,
) -> SimulatorConfig:
    """The simulator that imitates a profile: its dialect, model checks as strict as the profile's, and its
    jobs kept under ``run_root`` (``state``: ``None``/``True`` there, ``False`` in memory, a path: that one).

    A full ``SimulatorConfig`` is kept as given (with the profile's dialect when it names none).

    >>> config = in_process_config(None, profile="simulator", dialect="openai", strict_models=True, seed=7,
    ...                            time_scale=0.01, state=None, run_root=Path("/runs"))
    >>> config.seed, config.dialect, Path(config.state_dir).as_posix()
    (7, 'openai', '/runs/.simulator')
    """
    state_dir = _state_dir(simulator, state, run_root)
    if isinstance(simulator, SimulatorConfig):
        if simulator.dialect == "openai" and dialect != "openai":
            return dataclasses.replace(simulator, dialect=dialect)
        if simulator.dialect != dialect:
            raise ValueError(
                f"simulator.dialect={simulator.dialect!r} does not imitate profile {profile!r} "
                f"(its dialect is {dialect!r}). Fix: SimulatorConfig(dialect={dialect!r}, ...)."
            )
        return simulator
    if simulator not in (None, True):
        raise TypeError(f"simulator must be True or a SimulatorConfig, got {type(simulator).__name__}.")
    return SimulatorConfig(
        seed=seed,
        time_scale=DEFAULT_TIME_SCALE if time_scale is None else time_scale,
        dialect=dialect,
        strict_models=strict_models,
        state_dir=state_dir,
    )


def _state_dir(
    simulator: SimulatorConfig | bool | None, state: str | os.PathLike[str] | bool | None, run_root: Path
) -> str | None:
    """The simulator's ``state_dir`` from ``connect``'s options (absolute: a kernel may ``chdir`` later)."""
    if isinstance(simulator, SimulatorConfig):
        if state is not None:
            raise ValueError(
                "simulator_state was given with a SimulatorConfig, which has its own state_dir. "
                "Fix: SimulatorConfig(state_dir=...), or drop simulator_state."
            )
        return None  # unused: the config keeps its own
    if state is False:
        return None
    if state is None or state is True:
        return os.fspath(run_root.absolute() / STATE_DIR_NAME)
    return os.fspath(Path(state).absolute())


def served_state_dir(config: SimulatorConfig, transport: httpx.AsyncBaseTransport | None) -> str | None:
    """Where the in-process simulator a client talks to keeps its jobs (``None``: in memory, or not known):
    ``config``'s own, unless a transport was passed (then that simulator's, if it is one)."""
    if transport is None:
        return config.state_dir
    if isinstance(transport, SimulatorTransport):
        return transport.config.state_dir
    return None


def run_state_dir(recorded: str | None, run_dir: Path, dialect: str) -> str | None:
    """The simulator state a run was made on: the directory its ledger names, else (runs moved together
    with their ``.simulator``, or made before runs recorded it) the one beside the run."""
    beside = run_dir.absolute().parent / STATE_DIR_NAME
    if recorded and (Path(recorded) / state_file(dialect)).exists():
        return recorded
    if (beside / state_file(dialect)).exists():
        return os.fspath(beside)
    return recorded or os.fspath(beside)
