"""The embedded simulator: OpenAI's Videos API contract, served in-process or on a loopback port.

It is the toolkit's default backend, so ``sora_nb.connect()`` works with no key and no network. It
answers exactly like the real service (routes, validation, error envelope, headers, a job lifecycle
computed from the clock) and renders real H.264 MP4s derived from the prompt. Faults (rate limits,
5xx, dropped connections, ambiguous creates, latency, expiry) are configurable and seeded.

>>> import httpx
>>> transport = SimulatorTransport(SimulatorConfig(seed=7, time_scale=0.01))
>>> client = httpx.AsyncClient(transport=transport, base_url="http://simulator.local/v1",
...                            headers={"Authorization": "Bearer any-key"})  # no key: 401, as on the service

On a port, for any OpenAI-compatible client (``sora-nb simulator`` or ``python -m sora_nb.simulator``):

>>> serve(SimulatorConfig(time_scale=0.05), host="127.0.0.1", port=8000)  # serves until Ctrl-C  # doctest: +SKIP

With ``SimulatorConfig(state_dir=...)`` (``sora-nb simulator --state-dir DIR``; ``sora_nb.connect()``
uses ``<run_root>/.simulator``) its jobs survive the process, and ``read_audit(state_dir)`` reads back
every create it accepted.

In a client's process, ``sora_nb.connect()`` asks the simulator how to run (``in_process_config``: the
profile's dialect, where its jobs live) and ``sora_nb.resume()`` where a run's jobs were kept
(``run_state_dir``): that policy is the simulator's own.
"""

from __future__ import annotations

from ._config import SimulatorConfig
from ._inprocess import STATE_DIR_NAME, in_process_config, run_state_dir, served_state_dir
from ._persist import read_audit
from ._render import render_video
from ._serve import ServerHandle, add_arguments, run, serve, start_server
from ._transport import SimulatorTransport, create_app

__all__ = [
    "STATE_DIR_NAME",
    "ServerHandle",
    "SimulatorConfig",
    "SimulatorTransport",
    "add_arguments",
    "create_app",
    "in_process_config",
    "read_audit",
    "render_video",
    "run",
    "run_state_dir",
    "serve",
    "served_state_dir",
    "start_server",
]
