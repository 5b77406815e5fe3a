"""Notebook widgets for sora_nb (ipywidgets 8): one line per widget.

>>> import sora_nb
>>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
>>> sora_nb.ui.prompt(client)
<PromptBox profile='simulator' model='sora-2' jobs=0>
>>> sora_nb.ui.sweep(client)
<SweepBuilder profile='simulator' run=None>
>>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
>>> run.gallery(); run.compare(rows="prompt", cols="model"); run.table()  # doctest: +ELLIPSIS
<Gallery run ... page=1>
<CompareGrid run=... rows='prompt' cols='model'>
<ResultsTable run=... rows=2>
>>> sora_nb.ui.storyboard(client)  # several shots made into one video
<StoryboardBuilder profile='simulator' shots=2 board=None>
>>> run.review(rater="ana"); run.arena(by="model")  # judging: ratings, and blind A/B votes  # doctest: +ELLIPSIS
<Review run=... '0 of 2 rated by ana'>
<Arena run=... by='model' votes=0>
>>> client.close()

The widgets hold no API logic: they observe jobs and runs (``observe``) and call the engine's
methods (``client.generate``, ``job.cancel``, ``sweep.start``...). Their redraws are coalesced
(about four a second per widget at most); their callbacks hand work to the engine's loop. Videos play
from files through the notebook server (relative URLs; Voila needs ``mp4`` and ``webp`` in its
``VoilaConfiguration.file_allowlist``), never base64-embedded. ``media="bytes"`` (the default in VS
Code, which has no file server behind its notebooks) is for the card, gallery, compare grid and
table: videos travel as ``ipywidgets.Video`` widgets, sent only when shown and not saved in the
notebook unless widget state is, and posters (a few KB) as images or ``data:`` URIs. In that mode
the compare grid's videos start together but do not play, pause and seek in sync (that needs the
page's JavaScript). The API key never enters widget state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import ipywidgets  # noqa: F401
except ImportError as exc:
    raise ImportError(
        'sora_nb.ui needs ipywidgets 8 (the notebook extra). Fix: pip install "sora-nb[notebook]".'
    ) from exc

from .._run import Run
from ._arena import Arena
from ._compare import CompareGrid
from ._gallery import Gallery
from ._job import JobCard
from ._progress import RunProgress
from ._prompt import PromptBox
from ._review import Review
from ._server_gallery import ServerGallery
from ._show import display_job as display_job  # for job._ipython_display_(), not in __all__
from ._show import display_run as display_run  # for run._ipython_display_()
from ._storyboard import StoryboardBuilder
from ._sweep import SweepBuilder
from ._table import ResultsTable

if TYPE_CHECKING:
    from .._client import Client
    from .._jobs import Job
    from .._run import Run

__all__ = [  # in the order a user meets them
    "prompt",
    "sweep",
    "card",
    "progress",
    "gallery",
    "compare",
    "table",
    "PromptBox",
    "JobCard",
    "SweepBuilder",
    "RunProgress",
    "Gallery",
    "ServerGallery",
    "CompareGrid",
    "ResultsTable",
    "review",
    "arena",
    "Review",
    "Arena",
    "storyboard",
    "StoryboardBuilder",
]


def prompt(client: Client, **options: Any) -> PromptBox:
    """A prompt box for ``client``: options from its server, live cost, Generate adds job cards.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> sora_nb.ui.prompt(client)
    <PromptBox profile='simulator' model='sora-2' jobs=0>
    >>> client.close()
    """
    return PromptBox(client, **options)


def sweep(client: Client, **options: Any) -> SweepBuilder:
    """A sweep builder for ``client``: axes, job count, cost against a budget, Launch, live progress.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> sora_nb.ui.sweep(client, budget_usd=20)
    <SweepBuilder profile='simulator' run=None>
    >>> client.close()
    """
    return SweepBuilder(client, **options)


def card(job: Job, **options: Any) -> JobCard:
    """A live card for one job (what a job shows when it is the last line of a cell).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> sora_nb.ui.card(client.generate("a corgi surfing"))  # doctest: +ELLIPSIS
    <JobCard <Job j0001-... 'a corgi surfing'>>
    >>> client.close()
    """
    return JobCard(job, **options)


def progress(run: Run, **options: Any) -> RunProgress:
    """A run's live overall progress and per-job list (what a run shows as the last line of a cell).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> sora_nb.ui.progress(run)  # doctest: +ELLIPSIS
    <RunProgress <Run ... 2 jobs: 2 completed at ...>>
    >>> client.close()
    """
    return RunProgress(run, **options)


def gallery(run_or_client: Run | Client, **options: Any) -> Gallery | ServerGallery:
    """Thumbnails of a run (a :class:`Gallery`) or of the server's list of videos (a :class:`ServerGallery`),
    click to play, filter, page through.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> sora_nb.ui.gallery(run, status="completed")  # doctest: +ELLIPSIS
    <Gallery run ... page=1>
    >>> client.close()
    """
    if isinstance(run_or_client, Run):
        return Gallery(run_or_client, **options)
    return ServerGallery(run_or_client, **options)


def compare(run: Run, rows: str = "prompt", cols: str = "model", **options: Any) -> CompareGrid:
    """A run's videos pivoted by two axes, with synchronised play/pause.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> sora_nb.ui.compare(run, rows="prompt", cols="model")  # doctest: +ELLIPSIS
    <CompareGrid run=... rows='prompt' cols='model'>
    >>> client.close()
    """
    return CompareGrid(run, rows=rows, cols=cols, **options)


def table(run: Run, **options: Any) -> ResultsTable:
    """The run's DataFrame with posters, sortable, kept live.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> sora_nb.ui.table(run, sort_by="total_s")  # doctest: +ELLIPSIS
    <ResultsTable run=... rows=2>
    >>> client.close()
    """
    return ResultsTable(run, **options)


def review(run: Run, **options: Any) -> Review:
    """Rate a run's videos one at a time: stars, tags, a note (stored with ``run.rate``).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60)
    >>> sora_nb.ui.review(run, rater="ana")  # doctest: +ELLIPSIS
    <Review run=... '0 of 2 rated by ana'>
    >>> client.close()
    """
    return Review(run, **options)


def arena(run: Run, by: str = "model", **options: Any) -> Arena:
    """Blind A/B votes between two videos of the same prompt that differ on ``by`` (``run.vote``).

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"]).start().wait(timeout=60)
    >>> sora_nb.ui.arena(run, by="model")  # doctest: +ELLIPSIS
    <Arena run=... by='model' votes=0>
    >>> client.close()
    """
    return Arena(run, by=by, **options)


def storyboard(client: Client, **options: Any) -> StoryboardBuilder:
    """A storyboard editor for ``client``: shots (add, remove, reorder, prompt and length each), continuity,
    the estimate, Make, then per-shot progress and posters, the joined video, and Redo per shot.

    >>> import sora_nb
    >>> client = sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path"))  # the simulator
    >>> sora_nb.ui.storyboard(client, shots=[{"prompt": "a fox wakes"}, {"prompt": "the fox runs", "seconds": "8"}])
    <StoryboardBuilder profile='simulator' shots=2 board=None>
    >>> client.close()
    """
    return StoryboardBuilder(client, **options)
