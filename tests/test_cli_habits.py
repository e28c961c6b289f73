"""What a shell user expects of any command-line tool: --version, -h, shell completion, one progress bar that
stays off the way when not wanted, -v for the library's log, a JSON record for every failure under --json,
and --help grouped into panels that ends with examples that parse."""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import time
from pathlib import Path

import pytest
import typer
from helpers import moving_frames, run_cli, write_clip
from rich.console import Console
from test_generate import tiny_generator  # noqa: F401  (a fixture: a tiny random-weight generate model)
from test_reconstruct import TINY_V2V, _add

import vidgen
from vidgen.cli import _console as cli_console
from vidgen.cli import app
from vidgen.cli import _options as options
from vidgen.progress import BYTES, counting, known_total, progress_bar

VIDEO_COMMANDS = ("interpolate", "upscale", "reconstruct", "fuse", "generate")
BAR = "━"  # what a rich bar draws with
CONSOLE = cli_console.console  # the cached console of the command line (tests replace it for a while)


@pytest.fixture(autouse=True)
def plain_terminal_settings(monkeypatch: pytest.MonkeyPatch) -> object:
    """No variable that makes rich treat a captured stream as a terminal, and fresh consoles either side."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    CONSOLE.cache_clear()
    yield
    CONSOLE.cache_clear()


def terminal() -> tuple[Console, io.StringIO]:
    """A console that believes it writes to a terminal, and what it wrote."""
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120, color_system=None), screen


def force_terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Every bar the commands open draws on a fake terminal (the CLI's console and the library's default)."""
    console, screen = terminal()
    monkeypatch.setattr(cli_console, "console", lambda: console)
    monkeypatch.setattr("vidgen.progress._stderr_console", lambda: console)
    return screen


def bar_line(label: str, unit: str = "frames") -> re.Pattern[str]:
    """A drawn bar: its label, the bar itself, then `done/total unit`."""
    return re.compile(rf"{re.escape(label)}\s+[━╸╺]+\s+\d+/\d+ {unit}")


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand of `vidgen`, as the words that name it."""
    import click

    paths: list[tuple[str, ...]] = [()]

    def walk(command: click.Command, prefix: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


# --- --version, -h ------------------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"vidgen {vidgen.__version__}\n"
    assert re.fullmatch(r"vidgen \d+\.\d+\.\d+\n", result.stdout)


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "vidgen")
def test_dash_h_is_help_everywhere(path: tuple[str, ...]) -> None:
    short = run_cli(*path, "-h")
    assert short.returncode == 0, short.stderr
    assert "Usage:" in short.stdout and short.stdout == run_cli(*path, "--help").stdout


# --- shell completion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script_for_vidgen(shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer takes the shell as the option's value when it does not detect the current one (documented for tests)
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = run_cli("--show-completion", shell)
    assert result.returncode == 0, result.stderr
    assert "_VIDGEN_COMPLETE" in result.stdout and "vidgen" in result.stdout


def test_install_completion_writes_only_into_the_home_it_is_given(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run_cli("--install-completion", "bash")
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".bash_completions" / "vidgen.sh"
    assert "_VIDGEN_COMPLETE" in script.read_text() and str(script) in (tmp_path / ".bashrc").read_text()


def test_completion_completes_subcommands_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_VIDGEN_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "vidgen inter")
    monkeypatch.setenv("COMP_CWORD", "1")
    assert run_cli().stdout.split() == ["interpolate"]
    monkeypatch.setenv("COMP_WORDS", "vidgen upscale --til")
    monkeypatch.setenv("COMP_CWORD", "2")
    assert run_cli().stdout.split() == ["--tile"]


# --- the progress bar -----------------------------------------------------------------------------------


def test_bar_draws_frames_rate_and_time_on_a_terminal() -> None:
    console, screen = terminal()
    with progress_bar("clip.mp4", console=console) as update:
        assert update is not None
        for done in range(1, 5):
            update(done, 8)
            time.sleep(0.02)
    drawn = screen.getvalue()
    assert "clip.mp4" in drawn and BAR in drawn and "4/8 frames" in drawn and " fps" in drawn


def test_bar_of_bytes_shows_amount_and_rate() -> None:
    console, screen = terminal()
    with progress_bar("downloading weights.bin", unit=BYTES, console=console) as update:
        assert update is not None
        for done in range(1, 6):
            update(done * 400_000, 2_000_000)
            time.sleep(0.02)
    drawn = screen.getvalue()
    assert "downloading weights.bin" in drawn and "2.0/2.0 MB" in drawn and re.search(r"\d+(\.\d+)? [kM]B/s", drawn)


def test_bar_is_silent_off_a_terminal_and_when_turned_off() -> None:
    screen = io.StringIO()
    with progress_bar("clip.mp4", console=Console(file=screen)) as update:  # a file, a pipe: no terminal
        assert update is None
    console, drawn = terminal()
    with progress_bar("clip.mp4", enabled=False, console=console) as update:
        assert update is None
        with progress_bar("a download inside", unit=BYTES, console=console) as inner:  # --quiet reaches it
            assert inner is None
    assert screen.getvalue() == "" and drawn.getvalue() == ""


def test_a_bar_inside_a_bar_is_a_second_line_of_it() -> None:
    console, screen = terminal()
    with progress_bar("clip.mp4", console=console) as outer:
        assert outer is not None
        outer(1, 4)
        with progress_bar("downloading rife.pkl", unit=BYTES) as inner:  # no console of its own: joins
            assert inner is not None
            inner(10_000, 20_000)
            time.sleep(0.15)
    drawn = screen.getvalue()
    assert "clip.mp4" in drawn and "downloading rife.pkl" in drawn and "10.0/20.0 kB" in drawn


def test_counting_and_known_total() -> None:
    seen: list[tuple[int, int | None]] = []
    assert list(counting("abc", lambda done, total: seen.append((done, total)), 3, start=2)) == ["a", "b", "c"]
    assert seen == [(3, 3), (4, 3), (5, 3)]
    assert known_total(None, 5) == 5 and known_total(9, 5) == 5 and known_total(None, None) is None


@pytest.fixture
def short_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", moving_frames(5, 32, 32))


def video_runs(tmp_path: Path, clip: Path) -> dict[str, tuple[str, ...]]:
    """A quick, weightless run of each command that has a frame bar (label: the clip, or the output)."""
    return {
        "interpolate": ("interpolate", str(clip), "-m", "blend", "-o", str(tmp_path / "i.mp4")),
        "upscale": ("upscale", str(clip), "-m", "bicubic", "--x2", "-o", str(tmp_path / "u.mp4")),
        "fuse": ("fuse", str(clip), str(clip), "--mode", "mean", "-o", str(tmp_path / "f.mp4")),
        "eval interpolate": ("eval", "interpolate", str(clip), "-m", "blend"),
        "eval upscale": ("eval", "upscale", str(clip), "-m", "bicubic", "--factor", "2"),
        "eval compare": ("eval", "compare", str(clip), str(clip), "--max-frames", "5"),
    }


@pytest.mark.parametrize("command", ["interpolate", "upscale", "fuse", "eval interpolate", "eval upscale",
                                     "eval compare"])
def test_commands_draw_the_bar_on_a_terminal_and_not_with_quiet(command: str, tmp_path: Path, short_clip: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    screen = force_terminal(monkeypatch)
    args = video_runs(tmp_path, short_clip)[command]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    label = "f.mp4" if command == "fuse" else "clip.mp4"
    assert bar_line(label).search(screen.getvalue()), screen.getvalue()
    screen.truncate(0)
    screen.seek(0)
    for path in tmp_path.glob("[iuf].mp4"):
        path.unlink()
    quiet = run_cli(*args, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert not re.search(r"\d+/\d+ frames", screen.getvalue()), screen.getvalue()


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path, short_clip: Path) -> None:
    result = run_cli("interpolate", str(short_clip), "-m", "blend", "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 0, result.stderr
    assert BAR not in result.stderr and "\x1b[" not in result.stderr and "frames/s" in result.stderr


def test_reconstruct_and_eval_reconstruct_draw_the_bar(tmp_path: Path, short_clip: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _add(tmp_path, "tiny", "v2v", TINY_V2V)
    screen = force_terminal(monkeypatch)
    result = run_cli("reconstruct", str(short_clip), "-m", "tiny", "-o", str(tmp_path / "r.mp4"))
    assert result.returncode == 0, result.stderr
    assert bar_line("clip.mp4").search(screen.getvalue()) and "5/5 frames" in screen.getvalue()
    screen.truncate(0)
    screen.seek(0)
    result = run_cli("eval", "reconstruct", str(short_clip), "-m", "tiny")
    assert result.returncode == 0, result.stderr
    assert bar_line("clip.mp4").search(screen.getvalue())


def test_generate_prompts_counts_videos(tmp_path: Path, tiny_generator: str,  # noqa: F811
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    name = tiny_generator
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the digit 1 is moving left\nthe digit 2 is moving up\n")
    screen = force_terminal(monkeypatch)
    result = run_cli("generate", "--prompts", str(prompts), "-m", name, "-o", str(tmp_path / "videos"))
    assert result.returncode == 0, result.stderr
    assert bar_line("prompts.txt", "videos").search(screen.getvalue()) and "2/2 videos" in screen.getvalue()


def test_models_fetch_shows_bytes_and_rate_and_quiet_hides_them(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The download's own bar (registry/sources.py) is the shared one: bytes and rate; --quiet turns it off."""
    from vidgen.registry import sources

    upstream = tmp_path / "upstream.bin"
    upstream.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, read in 64 KiB blocks
    monkeypatch.setattr(sources, "_CHUNK", 1 << 16)
    asked: list[bool] = []

    def fake_ensure_weights(entry: object, progress: bool = True) -> Path:
        asked.append(progress)
        target = tmp_path / "weights.safetensors"
        sources._url_download(upstream.as_uri(), target, progress=progress)
        return target

    monkeypatch.setattr("vidgen.registry.ensure_weights", fake_ensure_weights)
    screen = force_terminal(monkeypatch)
    result = run_cli("models", "fetch", "rife")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "weights.safetensors")
    drawn = screen.getvalue()
    assert "downloading upstream.bin" in drawn and "1.0/1.0 MB" in drawn and re.search(r"[kMG]B/s", drawn), drawn
    screen.truncate(0)
    screen.seek(0)
    quiet = run_cli("models", "fetch", "rife", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout.strip() == str(tmp_path / "weights.safetensors")
    assert asked == [True, False] and screen.getvalue() == "" and quiet.stderr == ""


# --- -v / --verbose -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "shown", "hidden"), [
    ((), ["warning: careful"], ["info:", "debug:"]),
    (("-v",), ["warning: careful", "info: loading things"], ["debug:"]),
    (("-vv",), ["warning: vidgen.registry: careful", "info: vidgen.registry: loading things",
                "debug: vidgen.registry: details"], []),
    (("--verbose", "--verbose"), ["debug: vidgen.registry: details"], []),
])
def test_verbose_shows_the_library_log_on_stderr(flags: tuple[str, ...], shown: list[str], hidden: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log = logging.getLogger("vidgen.registry")

    def noisy_list(task: str | None = None) -> list:
        log.debug("details")
        log.info("loading things")
        log.warning("careful")
        return []

    monkeypatch.setattr("vidgen.registry.list_entries", noisy_list)
    handlers, level = list(logging.getLogger("vidgen").handlers), logging.getLogger("vidgen").level
    result = run_cli(*flags, "models", "list", "--json")
    assert result.returncode == 0, result.stderr
    for text in shown:
        assert text in result.stderr
    for text in hidden:
        assert text not in result.stderr
    assert result.stdout == ""  # the log never reaches stdout
    assert logging.getLogger("vidgen").handlers == handlers and logging.getLogger("vidgen").level == level


def test_verbose_shows_what_a_run_loads(tmp_path: Path, short_clip: Path) -> None:
    from vidgen.registry.loader import _load_cached

    _load_cached.cache_clear()  # loaded by an earlier test in this process: nothing to load, nothing to say
    result = run_cli("-v", "interpolate", str(short_clip), "-m", "blend", "-o", str(tmp_path / "o.mp4"), "-q")
    assert result.returncode == 0, result.stderr
    assert "info: loading blend.average" in result.stderr


# --- one JSON record for a failure ----------------------------------------------------------------------


def failure_cases(tmp_path: Path, clip: Path) -> dict[str, tuple[tuple[str, ...], dict[str, object], int]]:
    missing = str(tmp_path / "missing.mp4")
    return {
        "interpolate missing file": (("interpolate", missing, "-m", "blend"), {"input": missing}, 1),
        "interpolate unknown model": (("interpolate", str(clip), "-m", "nosuch", "-o", str(tmp_path / "o.mp4")),
                                      {"input": str(clip), "output": str(tmp_path / "o.mp4")}, 1),
        "interpolate usage": (("interpolate", str(clip), "--x2", "--x4"), {"input": str(clip)}, 2),
        "upscale missing file": (("upscale", missing, "-m", "bicubic"), {"input": missing}, 1),
        "fuse missing take": (("fuse", str(clip), missing, "--mode", "mean", "-o", str(tmp_path / "f.mp4")),
                              {"inputs": [str(clip), missing], "output": str(tmp_path / "f.mp4")}, 1),
        "reconstruct missing file": (("reconstruct", missing, "-o", str(tmp_path / "r.mp4")),
                                     {"input": missing, "output": str(tmp_path / "r.mp4")}, 1),
        "generate unknown model": (("generate", "the digit 3 is moving left", "-m", "nosuch",
                                    "-o", str(tmp_path / "g.mp4")),
                                   {"prompt": "the digit 3 is moving left", "output": str(tmp_path / "g.mp4")}, 1),
        "reconstruct usage": (("reconstruct", str(clip)), {"input": str(clip), "output": None}, 2),
        "generate usage": (("generate", "the digit 3 is moving left"), {"prompt": "the digit 3 is moving left"}, 2),
        "fuse usage": (("fuse", str(clip), "-o", str(tmp_path / "f.mp4"), "--mode", "mean", "-m", "x"),
                       {"inputs": [str(clip)]}, 2),
    }


@pytest.mark.parametrize("case", ["interpolate missing file", "interpolate unknown model", "interpolate usage",
                                  "upscale missing file", "fuse missing take", "reconstruct missing file",
                                  "generate unknown model", "reconstruct usage", "generate usage", "fuse usage"])
def test_a_failure_under_json_prints_one_record_and_keeps_the_error_line(case: str, tmp_path: Path,
                                                                         short_clip: Path) -> None:
    args, where, code = failure_cases(tmp_path, short_clip)[case]
    plain = run_cli(*args)
    result = run_cli(*args, "--json")
    assert result.returncode == plain.returncode == code
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    record = json.loads(lines[0])
    assert record["status"] == "failed" and {key: record[key] for key in where} == where
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "Traceback" not in result.stderr
    assert errors == [line for line in plain.stderr.splitlines() if line.strip()]  # the same line as without --json
    assert errors[0].startswith(f"error: {record['error']}")
    assert record["hint"] is None or f"(hint: {record['hint']})" in errors[0]


def test_batch_and_single_failures_share_one_record_shape(tmp_path: Path, short_clip: Path) -> None:
    missing = tmp_path / "missing.mp4"
    single = json.loads(run_cli("interpolate", str(missing), "-m", "blend", "--json").stdout)
    batch = run_cli("interpolate", str(short_clip), str(missing), "-m", "blend", "-o", str(tmp_path / "out"), "--json")
    assert batch.returncode == 1
    failed = [json.loads(line) for line in batch.stdout.splitlines() if json.loads(line)["status"] != "ok"]
    assert len(failed) == 1 and set(failed[0]) == set(single) == {"input", "output", "status", "error", "hint"}
    assert failed[0]["error"] == single["error"]


# --- --help: panels and examples ------------------------------------------------------------------------

PANELS = {
    "interpolate": [options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL,
                    options.BATCH_PANEL],
    "upscale": [options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL,
                options.BATCH_PANEL],
    "reconstruct": [options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL],
    "fuse": [options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL],
    "generate": [options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL],
}
IN_PANEL = {  # options a user looks for in a panel
    options.OUTPUT_PANEL: ["--codec", "--crf", "--overwrite"],
    options.MODEL_PANEL: ["--model"],
    options.PERFORMANCE_PANEL: ["--device"],
}


def panels(help_text: str) -> dict[str, str]:
    """Panel title -> its text, in the order --help shows them."""
    found: dict[str, str] = {}
    title = None
    for line in help_text.splitlines():
        opened = re.match(r"\s*╭─ (.+?) ─", line)
        if opened:
            title = opened.group(1)
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
            if line.strip().startswith("╰"):
                title = None
    return found


@pytest.mark.parametrize("command", VIDEO_COMMANDS)
def test_help_groups_options_into_panels(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    shown = panels(result.stdout)
    assert [title for title in shown if title in PANELS[command]] == PANELS[command]
    for title, names in IN_PANEL.items():
        for name in names:
            assert re.search(rf"{name}\b", shown[title]), (command, title, name)
    if options.BATCH_PANEL in PANELS[command]:
        assert "--skip-existing" in shown[options.BATCH_PANEL] and "--shard" in shown[options.BATCH_PANEL]


def examples_of(command: str) -> list[str]:
    epilog = typer.main.get_command(app).commands[command].epilog or ""
    return [line.strip() for line in epilog.split("\n\n") if line.strip().startswith("vidgen ")]


@pytest.mark.parametrize("command", VIDEO_COMMANDS)
def test_help_ends_with_examples_that_parse(command: str) -> None:
    examples = examples_of(command)
    assert 2 <= len(examples) <= 3 and all(len(example) <= 78 for example in examples)  # one line at 80 columns
    help_text = run_cli(command, "--help").stdout
    tail = help_text[help_text.rindex("Examples:"):]
    assert all(example in tail for example in examples) and "╰" not in tail  # the last thing --help shows
    click_command = typer.main.get_command(app).commands[command]
    from vidgen.registry import resolve

    for example in examples:
        words = shlex.split(example)
        assert words[:2] == ["vidgen", command]
        # parsed as the command line would (every option exists, every value is valid); nothing runs
        with click_command.make_context(command, words[2:]) as ctx:
            model = ctx.params.get("model")
            if model:
                resolve(model)  # a registered model


def test_panel_names_live_in_options() -> None:
    assert (options.INPUT_PANEL, options.OUTPUT_PANEL, options.MODEL_PANEL, options.PERFORMANCE_PANEL,
            options.BATCH_PANEL) == ("Input", "Output and encoding", "Model", "Performance", "Batch")
