"""Serving the simulator on a loopback port with uvicorn, and its command-line options.

A simulated dropped connection must look like one on the wire. Uvicorn answers 500 when an app
raises before responding, so the server uses a small subclass of uvicorn's h11 protocol that catches
:class:`~._faults.DropConnection` and closes (or resets) the TCP connection instead, without a byte of
response. Uvicorn is an optional dependency (the ``server`` extra); it is imported only here, lazily.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._config import DIALECTS, SimulatorConfig
from ._faults import DropConnection
from ._transport import create_app

__all__ = ["ServerHandle", "add_arguments", "config_from_args", "run", "serve", "start_server"]

_KEYS_ENV_HELP = "name of an environment variable holding comma-separated API keys to require"


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Serving the simulator on a port needs uvicorn: pip install 'sora-nb[server]'") from exc
    return uvicorn


def _protocol_class() -> type[Any]:
    """Uvicorn's h11 protocol, made to drop connections for real on :class:`DropConnection`."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DroppingH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            inner = self.app

            async def app(scope: Any, receive: Any, send: Any) -> None:
                try:
                    await inner(scope, receive, send)
                except DropConnection as drop:
                    if drop.kind == "reset":
                        # SO_LINGER 0 makes the close send RST: the client sees a connection reset.
                        sock = self.transport.get_extra_info("socket")
                        if sock is not None:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.transport.abort()
                    else:
                        self.transport.close()
                    # Wait for connection_lost to mark the cycle disconnected; uvicorn then does not
                    # try to send its own 500 on the dead connection.
                    for _ in range(100):
                        if self.cycle is None or self.cycle.disconnected:
                            break
                        await asyncio.sleep(0)

            self.app = app

    return DroppingH11Protocol


def _uvicorn_config(config: SimulatorConfig | None, clock: Callable[[], float] | None, **options: Any) -> Any:
    uvicorn = _uvicorn()
    return uvicorn.Config(
        create_app(config, clock=clock),
        http=_protocol_class(),
        lifespan="off",
        ws="none",
        **options,
    )


def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> None:
    """Serve the simulator until interrupted (blocking). Clients use ``http://{host}:{port}/v1``.

    >>> serve(SimulatorConfig(time_scale=0.05), port=8000)  # serves until Ctrl-C  # doctest: +SKIP
    """
    uvicorn = _uvicorn()
    uvicorn.Server(_uvicorn_config(config, None, host=host, port=port, log_level=log_level)).run()


class ServerHandle:
    """A simulator served by uvicorn in a background thread (see :func:`start_server`).

    Attributes:
        base_url: ``http://host:port/v1``, for any OpenAI-compatible client.
        host, port: Where it listens.
    """

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}/v1"

    @property
    def app(self) -> Any:
        """The served Starlette app (``app.simulator`` is its state)."""
        return self._server.config.app

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_server(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] | None = None,
    timeout: float = 10.0,
) -> ServerHandle:
    """Serve the simulator in a background thread; ``port=0`` picks a free port. Returns when listening.

    >>> import httpx
    >>> with start_server(SimulatorConfig(time_scale=0.01)) as server:
    ...     httpx.get(f"{server.base_url}/videos", headers={"Authorization": "Bearer sk-test"}).json()["data"]
    []
    """
    uvicorn = _uvicorn()
    # IPPROTO_TCP named explicitly: asyncio then sets TCP_NODELAY, without which every answer waits
    # ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        _uvicorn_config(config, clock, host=host, port=bound_port, log_config=None, access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sora_nb-simulator-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout)
            sock.close()
            raise RuntimeError(f"the simulator did not start on {host}:{bound_port}")
        time.sleep(0.01)
    return ServerHandle(server, thread, host, bound_port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options (``sora-nb simulator ...``) to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--seed", type=int, default=None, help="seed for ids, durations and faults")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply simulated durations (0.01: ~60 s jobs take 0.6 s)"
    )
    parser.add_argument("--max-side", type=int, default=320, help="long side of rendered videos in px")
    parser.add_argument("--fps", type=int, default=12, help="frames per second of rendered videos")
    parser.add_argument(
        "--distinct-renders", type=int, default=None, metavar="N",
        help="load tests: jobs share N renders per model, size and length, whatever their prompts "
        "(default: every job its own video)",
    )
    parser.add_argument("--lenient-models", action="store_true", help="accept any model and ignore unknown parameters")
    parser.add_argument("--api-keys-env", metavar="VAR", default=None, help=_KEYS_ENV_HELP)
    parser.add_argument("--cache-dir", default=None, help="keep rendered assets here (default: temp dir)")
    parser.add_argument(
        "--state-dir", default=None,
        help="keep jobs and characters here, so a restarted simulator still serves them (default: in memory only)",
    )
    parser.add_argument(
        "--dialect", choices=DIALECTS, default="openai",
        help="the API to speak: openai (default) or a hosted service's (" + ", ".join(DIALECTS[1:]) + ")",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--fail-marker", default="[fail]", help="prompts containing it fail (moderation)")
    faults.add_argument("--failure-rate", type=float, default=0.0, help="probability a job fails partway")
    faults.add_argument(
        "--defect-rate", type=float, default=0.0,
        help="probability a video is defective (black frames, frozen tail, flicker, short); "
        "or put [defect:KIND] in a prompt",
    )
    faults.add_argument("--rate-limit-rpm", type=int, default=None, help="requests per minute per key")
    faults.add_argument("--create-rate-limit-rpm", type=int, default=None, help="job creations per minute per key")
    faults.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500/502/503")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="probability of a dropped connection")
    faults.add_argument(
        "--drop-after-create-rate",
        type=float,
        default=0.0,
        help="probability that an accepted create loses its answer",
    )
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    faults.add_argument("--asset-ttl", type=float, default=None, help="seconds until assets expire (24 h)")
    faults.add_argument("--poll-after-ms", type=int, default=None, help="send openai-poll-after-ms")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Build a :class:`SimulatorConfig` from parsed :func:`add_arguments` options.

    Raises:
        ValueError: An option is out of range, or ``--api-keys-env`` names an unset variable.
    """
    api_keys = None
    if args.api_keys_env:
        raw = os.environ.get(args.api_keys_env, "")
        keys = frozenset(key.strip() for key in raw.split(",") if key.strip())
        if not keys:
            raise ValueError(f"environment variable {args.api_keys_env} holds no API keys")
        api_keys = keys
    return SimulatorConfig(
        seed=args.seed,
        time_scale=args.time_scale,
        max_side=args.max_side,
        fps=args.fps,
        distinct_renders=getattr(args, "distinct_renders", None),
        strict_models=not args.lenient_models,
        api_keys=api_keys,
        cache_dir=args.cache_dir,
        state_dir=getattr(args, "state_dir", None),
        fail_marker=args.fail_marker or None,
        failure_rate=args.failure_rate,
        defect_rate=args.defect_rate,
        rate_limit_rpm=args.rate_limit_rpm,
        create_rate_limit_rpm=args.create_rate_limit_rpm,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        drop_after_create_rate=args.drop_after_create_rate,
        latency=args.latency,
        asset_ttl=args.asset_ttl,
        poll_after_ms=args.poll_after_ms,
        dialect=getattr(args, "dialect", "openai"),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``sora-nb simulator`` with parsed options; returns the process exit code."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"sora-nb simulator: {exc}\n")
        return 2
    from .dialects import API_PATHS

    what = "OpenAI Videos API" if config.dialect == "openai" else f"{config.dialect} dialect"
    sys.stderr.write(
        f"sora_nb simulator: {what} at http://{args.host}:{args.port}{API_PATHS[config.dialect]} "
        f"(audit: http://{args.host}:{args.port}/_simulator/audit)\n"
    )
    if config.state_dir is not None:
        sys.stderr.write(f"sora_nb simulator: jobs kept in {config.state_dir}\n")
    try:
        serve(config, host=args.host, port=args.port, log_level=args.log_level)
    except ImportError as exc:
        sys.stderr.write(f"sora-nb simulator: {exc}\n")
        return 1
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    return 0
