"""sora_nb: AI video generation as a first-class citizen of Jupyter notebooks.

>>> import sora_nb
>>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator, fast
>>> job = client.generate("a corgi surfing at sunset")
>>> job.wait(timeout=600).video_path.suffix
'.mp4'
>>> client.close()

Names are listed in the order a user meets them. ``sora_nb.ui`` (widgets) and ``sora_nb.simulator``
are imported on first use, so ``import sora_nb`` stays light.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

from ._audit import AuditReport
from ._client import Client
from ._connect import connect, resume
from ._contract import ContractClient
from ._cost import Estimate
from ._errors import (
    AmbiguousCreateError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    ConflictError,
    DownloadError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunLockedError,
    ServerError,
    SoraError,
    StorageError,
    TransportError,
    UnexpectedResponseError,
    UnsupportedOperationError,
    ValidationError,
)
from ._jobs import Job
from ._metrics import measure_video, register_metric, unregister_metric
from ._polling import PollPolicy
from ._pool import pool
from ._profiles import PROFILES, Profile
from ._results import COLUMNS
from ._retry import RetryPolicy
from ._run import Run
from ._storyboard import Storyboard
from ._styles import STYLES
from ._sweep import Sweep
from ._sweepfile import load_sweep_file
from ._types import Character, DeletedVideo, JobSpec, JobStatus, RateLimitInfo, Video, VideoError, VideoList

if TYPE_CHECKING:
    import pandas

    from . import simulator as simulator
    from . import ui as ui

__version__ = "0.1.0"

__all__ = [
    # connecting and generating
    "connect",
    "Client",
    "Job",
    "Sweep",
    "Estimate",
    "load_sweep_file",
    "Run",
    "Storyboard",
    "resume",
    "load_run",
    "AuditReport",
    "pool",
    "COLUMNS",
    "STYLES",
    # judging a sweep
    "measure_video",
    "register_metric",
    "unregister_metric",
    # errors
    "SoraError",
    "ConfigurationError",
    "ValidationError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RateLimitError",
    "ServerError",
    "UnexpectedResponseError",
    "TransportError",
    "DownloadError",
    "StorageError",
    "JobFailedError",
    "JobTimeoutError",
    "BudgetExceededError",
    "AmbiguousCreateError",
    "RunLockedError",
    "UnsupportedOperationError",
    # the contract, for direct use
    "ContractClient",
    "Video",
    "VideoError",
    "VideoList",
    "DeletedVideo",
    "Character",
    "RateLimitInfo",
    "JobSpec",
    "JobStatus",
    "Profile",
    "PROFILES",
    "PollPolicy",
    "RetryPolicy",
    "__version__",
]


def load_run(run_dir: str | os.PathLike[str]) -> pandas.DataFrame:
    """A run's jobs as a pandas DataFrame, read from its ledger: offline, no network, no client.

    >>> import sora_nb
    >>> with sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path")) as client:
    ...     run_dir = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60).run_dir
    >>> df = sora_nb.load_run(run_dir)
    >>> df[["prompt", "status"]]
                prompt     status
    0  a corgi surfing  completed
    1     a cat skiing  completed
    """
    from ._results import load_run as _load_run

    return _load_run(run_dir)


def _show_as_public(cls: type) -> None:
    """Show ``cls`` where users find it: ``sora_nb.Job`` in reprs and tracebacks, not ``sora_nb._jobs.Job``
    (as httpx does). Doctest then finds the class's own examples here, and no longer finds its methods' in
    the module that defines them (they are not "from" either module): they are listed in that module's
    ``__test__``, so that every example still runs, once, with its module's names."""
    home = sys.modules[cls.__module__]
    tests = home.__dict__.setdefault("__test__", {})
    for attr, member in vars(cls).items():
        function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if inspect.isroutine(function) and ">>>" in (function.__doc__ or ""):
            tests[f"{cls.__name__}.{attr}"] = function
    cls.__module__ = __name__


for _name in __all__:
    if isinstance(globals()[_name], type):
        _show_as_public(globals()[_name])
del _name


def __getattr__(name: str) -> Any:
    if name in ("ui", "simulator"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sora_nb' has no attribute {name!r}")
