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

from typing import TYPE_CHECKING, Any

from ._audit import AuditReport
from ._client import Client, Sweep, connect, resume
from ._contract import ContractClient
from ._errors import (
    AmbiguousCreateError,
    APIError,
    AuthenticationError,
    BadRequestError,
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
from ._jobs import Job, Run
from ._metrics import measure_video, register_metric, unregister_metric
from ._polling import PollPolicy
from ._profiles import PROFILES, Profile
from ._results import COLUMNS
from ._retry import RetryPolicy
from ._styles import STYLES
from ._sweeps import BudgetExceededError, Estimate
from ._types import Character, DeletedVideo, JobSpec, RateLimitInfo, Video, VideoError, VideoList

if TYPE_CHECKING:
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
    "Run",
    "resume",
    "load_run",
    "AuditReport",
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
    "Profile",
    "PROFILES",
    "PollPolicy",
    "RetryPolicy",
    "__version__",
]


def load_run(run_dir: Any) -> Any:
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


def __getattr__(name: str) -> Any:
    if name in ("ui", "simulator"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sora_nb' has no attribute {name!r}")
