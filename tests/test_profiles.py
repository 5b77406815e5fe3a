"""Choosing a server: profiles, base URLs and where the key comes from (never echoed, never stored)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import sora_nb
from sora_nb._profiles import Profile, resolve_api_key, resolve_profile


def test_default_is_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SORA_NB_PROFILE", raising=False)
    monkeypatch.delenv("SORA_NB_BASE_URL", raising=False)
    assert resolve_profile(None).name == "simulator"


def test_a_base_url_means_openai_compatible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SORA_NB_PROFILE", raising=False)
    monkeypatch.setenv("SORA_NB_BASE_URL", "http://localhost:4000/v1")
    profile = resolve_profile(None)
    assert (profile.name, profile.base_url) == ("openai-compatible", "http://localhost:4000/v1")
    assert resolve_profile(None, base_url="http://gw:9/v1").base_url == "http://gw:9/v1"


def test_key_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = Profile("p", key_env=("FIRST_KEY", "SECOND_KEY"), requires_key=True)
    monkeypatch.delenv("FIRST_KEY", raising=False)
    monkeypatch.setenv("SECOND_KEY", "from-env-2")
    assert resolve_api_key(profile, "given") == "given"
    assert resolve_api_key(profile, None) == "from-env-2"
    monkeypatch.setenv("FIRST_KEY", "from-env-1")
    assert resolve_api_key(profile, None) == "from-env-1"


def test_key_prompt_never_echoes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return "typed-secret\n"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    profile = Profile("hosted", key_env=("NO_SUCH_KEY_VAR",), requires_key=True)
    assert resolve_api_key(profile, None, interactive=True) == "typed-secret"
    assert asked and "input hidden" in asked[0] and "NO_SUCH_KEY_VAR" in asked[0]


def test_a_local_gateway_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert resolve_api_key(resolve_profile("openai-compatible", base_url="http://127.0.0.1:1/v1"), None) is None


def test_client_repr_hides_the_key(tmp_path: Path) -> None:
    key = "sk-never-shown-0123456789abcdef"
    with sora_nb.connect("openai-compatible", base_url="http://127.0.0.1:1/v1", api_key=key, run_root=tmp_path) as c:
        assert key not in repr(c) and "key=set" in repr(c)
        assert key not in repr(c.api)


def test_simulator_options_on_another_profile_are_refused() -> None:
    with pytest.raises(ValueError, match="simulator options"):
        sora_nb.connect("openai-compatible", base_url="http://127.0.0.1:1/v1", time_scale=0.1)


def test_blocking_wait_inside_a_running_loop_uses_nest_asyncio2(tmp_path: Path) -> None:
    """In a kernel cell the loop that does the work is the caller's own: job.wait() re-enters it.

    Run in a child process: nest-asyncio2 patches asyncio process-wide once applied, which is why
    sora_nb applies it only when such a wait happens, never at import.
    """
    code = f"""
import asyncio, sys, sora_nb
async def cell():
    client = sora_nb.connect("simulator", time_scale=0.004, run_root={str(tmp_path)!r})
    try:
        assert "nest_asyncio2" not in sys.modules
        return client.generate("a cell that blocks").wait(timeout=30).status
    finally:
        await client.aclose()
print(asyncio.run(cell()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "completed"


def test_await_in_a_running_loop(tmp_path: Path) -> None:
    async def cell() -> str:
        client = sora_nb.connect("simulator", time_scale=0.004, run_root=tmp_path)
        try:
            job = await client.generate("an awaited job")
            return job.status
        finally:
            await client.aclose()

    assert asyncio.run(cell()) == "completed"
