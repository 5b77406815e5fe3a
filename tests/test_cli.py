"""The ``sora-nb`` command, run in-process: exit codes, what it prints, and the files it leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sora_nb
from sora_nb._cli import main

FAST = ["--time-scale", "0.002"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (the default run roots, sweep files) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "SORA_NB_PROFILE", "SORA_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "ledger.sqlite").exists()) if root.exists() else []


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_command_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["--help"], capsys)
    for command in ("demo", "generate", "sweep", "resume", "ls", "simulator"):
        assert command in out
    assert "examples:" in out
    assert 'sora-nb generate "a corgi surfing at sunset"' in out
    assert "sora-nb sweep grid.yaml --max-concurrency 4 --budget-usd 20" in out
    assert "sora-nb resume sora_runs/" in out


def test_simulator_help(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["simulator", "--help"], capsys)
    assert "--port" in out and "--time-scale" in out and "--drop-after-create-rate" in out


def test_demo_makes_six_videos_and_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--run-root", str(tmp_path / "demo"), *FAST]) == 0
    out, err = capsys.readouterr()
    (run_dir,) = _runs(tmp_path / "demo")
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert len(videos) == 6 and all(v.stat().st_size > 0 for v in videos)
    assert "job" in out and "status" in out and "cost $" in out
    assert out.count("completed") == 6
    assert f"run directory: {run_dir}" in out
    assert "6/6 done (6 completed)" in err  # the progress display, on stderr


def test_generate_one_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "a corgi surfing at sunset", "--size", "1280x720", "--seconds", "4",
                 "--run-root", "runs", *FAST, "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    (run_dir,) = _runs(tmp_path / "runs")
    assert "completed" in out and "1280x720" in out
    df = sora_nb.load_run(run_dir)
    assert list(df["status"]) == ["completed"] and Path(df["video_path"][0]).exists()


def test_a_failed_job_exits_1_and_shows_the_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "a storm over the sea [fail]", "--run-root", "runs", *FAST, "--quiet"])
    assert code == 1
    out, err = capsys.readouterr()
    assert "failed" in out and "moderation_blocked" in out
    assert "1 of 1 jobs did not complete" in err


def test_sweep_from_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "grid.yaml").write_text(
        "# 2 prompts x 2 durations\n"
        "prompt: [a corgi surfing, a cat skiing]\n"
        "model: sora-2\n"
        "seconds: [4, 8]\n"
        "size: 1280x720\n"
        "max_concurrency: 2\n"
        "budget_usd: 10\n"
        "run_dir: runs/yaml-grid\n"
    )
    assert main(["sweep", "grid.yaml", *FAST, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 24 s of video, est. $2.40" in out
    df = sora_nb.load_run(tmp_path / "runs" / "yaml-grid")
    assert len(df) == 4 and set(df["status"]) == {"completed"}
    assert sorted(df["seconds"].astype(str)) == ["4", "4", "8", "8"]


def test_sweep_of_a_storyboard_from_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "boards.yaml").write_text(
        "storyboard:\n"
        "  - {prompt: a fox wakes in a meadow, seconds: 4}\n"
        "  - {prompt: the fox runs to the river, seconds: 4}\n"
        "model: [sora-2, sora-2-pro]\n"
        "size: 1280x720\n"
        "budget_usd: 5\n"
        "run_dir: runs/boards\n"
    )
    assert main(["sweep", "boards.yaml", *FAST, "--quiet"]) == 0
    assert "4 jobs, 16 s of video, est. $3.20" in capsys.readouterr().out
    df = sora_nb.load_run(tmp_path / "runs" / "boards")
    joined = df[df["kind"] == "stitch"]
    assert len(df) == 6 and sorted(joined["model"]) == ["sora-2", "sora-2-pro"] and set(df["status"]) == {"completed"}


def test_sweep_from_a_json_file_of_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"prompt": "a corgi surfing", "model": "sora-2-pro", "size": "1792x1024"},
            {"prompt": "a cat skiing", "seconds": 8}]
    (tmp_path / "rows.json").write_text(json.dumps({"rows": rows}))
    assert main(["sweep", "rows.json", "--run-dir", "runs/json-rows", "--max-concurrency", "2", *FAST,
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 jobs")
    df = sora_nb.load_run(tmp_path / "runs" / "json-rows")
    assert sorted(df["prompt"]) == ["a cat skiing", "a corgi surfing"]
    assert set(df["status"]) == {"completed"}


def test_sweep_over_budget_is_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "big.json").write_text(json.dumps({"prompt": ["a", "b"], "model": "sora-2-pro", "seconds": 12}))
    code = main(["sweep", "big.json", "--budget-usd", "1", "--run-root", "runs", *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "over the budget of $1.00" in err and "Fix: raise budget_usd=" in err
    assert _runs(tmp_path / "runs") == []  # refused before anything was written or sent


def test_ls_lists_runs_and_their_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--run-root", "runs"]) == 0
    assert "no runs under runs/" in capsys.readouterr().out
    assert main(["generate", "a paper boat", "--run-root", "runs", *FAST, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ls", "--run-root", "runs"]) == 0
    (run_dir,) = _runs(tmp_path / "runs")
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(run_dir.name) and "simulator" in line and "1 jobs (1 completed)" in line
    assert main(["ls", str(run_dir)]) == 0  # one run directory works too
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(run_dir.name) and "1 jobs (1 completed)" in line


def test_audit_finds_an_orphan_deletes_it_when_asked_then_is_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "a paper boat", "--run-root", "runs", *FAST, "--quiet"]) == 0
    (run_dir,) = _runs(tmp_path / "runs")
    assert main(["audit", str(run_dir)]) == 0
    assert "all clear" in capsys.readouterr().out
    # Someone else on the account (or a create whose answer was lost) made the same request: paid, unrecorded.
    with sora_nb.connect("simulator", run_root="runs", time_scale=0.002) as other:
        stray = other.call(lambda api: api.create(prompt="a paper boat", size="720x1280", seconds="4"))
    assert main(["audit", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "1 orphan" in out and stray.id in out and "--delete-orphans" in out
    assert main(["audit", str(run_dir), "--delete-orphans"]) == 0  # nothing left to look at
    assert f"deleted 1 orphan(s) on the server: {stray.id}" in capsys.readouterr().out
    assert main(["audit", str(run_dir)]) == 0


def test_resume_of_a_finished_run_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "a hot air balloon", "--run-root", "runs", *FAST, "--quiet"]) == 0
    (run_dir,) = _runs(tmp_path / "runs")
    before = sora_nb.load_run(run_dir)
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and f"run directory: {run_dir}" in out
    after = sora_nb.load_run(run_dir)
    assert list(after["remote_id"]) == list(before["remote_id"])  # nothing sent again
    assert list(after["checksum"]) == list(before["checksum"])


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["generate"],
    ["sweep", "grid.yaml", "--max-concurrency", "many"],
    ["demo", "--time-scale", "fast"],
])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: sora-nb" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", "missing.yaml"], "missing.yaml"),
    (["sweep", "grid.txt"], "Fix: use a .yaml, .yml or .json file"),
    (["resume", "no-such-run"], "no sora_nb run at"),
])
def test_user_mistakes_exit_2_with_a_message_not_a_traceback(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "grid.txt").write_text("prompt: a corgi\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_a_bad_key_in_a_sweep_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "typo.yaml").write_text("prompt: [a corgi]\nmodels: [sora-2]\n")
    assert main(["sweep", "typo.yaml", "--run-root", "runs"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'models'" in err and "model" in err


def test_a_sweep_file_may_say_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `strict` is a documented sweep-file key; it once collided with the profile's own default (TypeError).
    (tmp_path / "lenient.yaml").write_text("prompt: [a corgi]\nstrict: false\n")
    assert main(["sweep", "lenient.yaml", "--run-root", "runs", *FAST, "--quiet"]) == 0
    assert "completed" in capsys.readouterr().out


def test_generate_on_a_hosted_profiles_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "a kite over the dunes", "--profile", "xai", "--simulator", "--quiet",
                 "--time-scale", "0.002", "--run-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "completed" in out and "grok-imagine-video" in out
    assert len(list(tmp_path.glob("*/videos/*.mp4"))) == 1


# ---------------------------------------------------------------------------------------- a newcomer's mistakes


def test_a_failed_job_prints_the_servers_reason(capsys: pytest.CaptureFixture[str]) -> None:
    """The reason was in the ledger only: the terminal showed 'moderation_blocked' and nothing more."""
    assert main(["generate", "a storm over the sea [fail]", "--run-root", "runs", *FAST, "--quiet"]) == 1
    err = capsys.readouterr().err
    (run_dir,) = _runs(Path("runs"))
    (message,) = sora_nb.load_run(run_dir)["error_message"]
    assert message and f"failed: moderation_blocked: {message}" in err


def test_an_unknown_model_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    """`--model sora2` was sent, failed at the server, and showed only 'invalid_value'."""
    assert main(["generate", "a cat", "--model", "sora2", "--run-root", "runs", *FAST, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--model sora2 is not a model of simulator. Allowed: sora-2, sora-2-pro. Fix: --model sora-2." in err
    assert not list(Path("runs").glob("*/ledger.sqlite"))


def test_an_unknown_model_in_a_sweep_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    Path("grid.yaml").write_text("prompt: [a corgi]\nmodel: [sora-2, sora-2-pr]\n")
    assert main(["sweep", "grid.yaml", "--run-root", "runs", *FAST, "--quiet"]) == 2
    assert "grid.yaml: model: sora-2-pr is not a model of simulator" in capsys.readouterr().err
    assert not list(Path("runs").glob("*/ledger.sqlite"))


def test_hints_use_flags_not_python(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "a cat", "--seconds", "5", "--run-root", "runs", *FAST]) == 2
    err = capsys.readouterr().err
    assert "--seconds 5 is not allowed" in err and "e.g. --seconds 4" in err
    assert "seconds=" not in err


def test_sweep_help_shows_a_sweep_file(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["sweep", "--help"], capsys)
    assert "prompt: [a corgi surfing, a cat skiing]" in out and "repeats: 2" in out and '"rows"' in out


def test_demo_help_says_where_it_writes(capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(_help(["demo", "--help"], capsys).split())
    assert "Writes ./sora_demo/<run-id>/: videos/ (MP4), thumbnails/ (WebP posters)" in out


def test_ls_finds_the_demos_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`sora-nb demo` then `sora-nb ls`, as a newcomer types them: ls looked in sora_runs/ only."""
    assert main(["demo", *FAST, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ls"]) == 0
    (run_dir,) = _runs(Path("sora_demo"))
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(run_dir.name) and "6 jobs (6 completed)" in line
