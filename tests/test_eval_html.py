"""`--html` on the evals and `eval compare` of several videos: each writes a comparison page (the page, its
media beside it, every video referenced), refuses a bad page path in one line before any work, and leaves no
work files behind. The page itself is tested in a browser in tests/test_report_page.py; one more browser
check here opens a page of three videos made by an eval."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import moving_frames, run_cli, write_clip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """9 frames, 64x48, lossless: the evals' scores and the page's agree exactly."""
    return write_clip(tmp_path / "clip.mkv", moving_frames(9), codec="ffv1", pix_fmt="yuv444p", options={})


def _noisy(path: Path, frames: list[np.ndarray], seed: int, spread: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_clip(path, [np.clip(f.astype(int) + rng.integers(-spread, spread + 1, f.shape), 0, 255).astype(np.uint8)
                             for f in frames])


def _check_page(page: Path, labels: list[str]) -> str:
    """The page and its media exist, the page references every video (in order, with its label), and nothing
    else (no work folder) was left beside it."""
    assert page.is_file()
    media = page.with_name(f"{page.stem}_files")
    text = page.read_text()
    for k in range(len(labels)):
        assert (media / f"video{k}.webm").stat().st_size > 0
        assert f'src="{media.name}/video{k}.webm"' in text
    assert not (media / f"video{len(labels)}.webm").exists()
    assert re.findall(r"<figcaption>([^<]*)</figcaption>", text) == labels
    assert list(media.glob("*-v1-error.png"))  # the worst frames' heat maps
    assert not [p.name for p in page.parent.iterdir() if p.name.startswith(".")]  # no temporary files or folders
    return text


def _one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_compare_scores_each_video_against_the_first_and_pages_them_all(tmp_path: Path) -> None:
    frames = moving_frames(8, 64, 48)
    reference = write_clip(tmp_path / "ref.mkv", frames, codec="ffv1", pix_fmt="yuv444p", options={})
    others = [_noisy(tmp_path / f"noisy{k}.mp4", frames, k, 8 * (k + 1)) for k in range(3)]
    page = tmp_path / "out" / "report.html"
    args = ["eval", "compare", str(reference), *map(str, others)]

    result = run_cli(*args, "--json", "--html", str(page))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["distorted"] for r in records] == [str(p) for p in others]  # one record per compared video
    assert all(r["reference"] == str(reference) and r["frames"] == 8 for r in records)
    assert records[0]["psnr"] > records[1]["psnr"] > records[2]["psnr"]  # more noise, lower PSNR
    text = _check_page(page, ["ref.mkv", "noisy0.mp4", "noisy1.mp4", "noisy2.mp4"])
    for record in records:  # the page's table shows the same means
        assert f"<td>{record['psnr']:.2f}</td>" in text

    table = run_cli(*args)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stderr.splitlines() if re.search(r"noisy\d\.mp4", line)]
    assert len(rows) == 3 and all(f"{r['psnr']:.2f}" in row for r, row in zip(records, rows))

    again = run_cli(*args, "--html", str(page))  # the page exists: refused before any work, then replaced
    _one_line(again, 1, "already exists", "--overwrite")
    assert run_cli(*args, "--html", str(page), "--overwrite").returncode == 0


def test_compare_needs_two_videos(clip: Path) -> None:
    _one_line(run_cli("eval", "compare", str(clip)), 2, "at least one video")


def test_eval_interpolate_html_shows_the_dropped_frames_and_each_models_rebuilt_ones(tmp_path: Path, clip: Path) -> None:
    page = tmp_path / "pages" / "interp.html"
    result = run_cli("eval", "interpolate", str(clip), "--model", "blend,flow", "--json", "--html", str(page))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout stays JSON records only
    text = _check_page(page, ["original", "blend.average", "classical-flow.dis"])
    for row in rows:  # the page scores what the eval scored: the 4 rebuilt frames, exactly
        assert row["frames"] == 4
        assert re.search(rf"<td>{re.escape(row['model'])}</td><td>4</td><td>{row['psnr']:.2f}</td>", text)
    from vidgen.video.reader import read_rgb_frames

    assert len(list(read_rgb_frames(page.with_name("interp_files") / "video0.webm"))) == 4


def test_eval_upscale_html(tmp_path: Path, clip: Path) -> None:
    page = tmp_path / "up.html"
    result = run_cli("eval", "upscale", str(clip), "--model", "bicubic", "--factor", "2", "--max-frames", "5",
                     "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert f"page: {page}" in result.stderr
    _check_page(page, ["original", "resize.bicubic", "resize.lanczos"])


def test_eval_reconstruct_html(tmp_path: Path, clip: Path) -> None:
    import torch

    from vidgen.registry.archs import get_arch

    config = {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2, "chunk_frames": 4}
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(get_arch("v2v").build(**config).state_dict(), weights)
    added = run_cli("models", "add", "tiny", "--weights", str(weights), "--arch", "v2v", "--config", json.dumps(config))
    assert added.returncode == 0, added.stderr
    page = tmp_path / "rec.html"
    result = run_cli("eval", "reconstruct", str(clip), "--model", "tiny", "--max-frames", "5", "--device", "cpu",
                     "--json", "--html", str(page))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    text = _check_page(page, ["original", row["model"]])
    assert f"<td>{row['model']}</td><td>5</td><td>{row['psnr']:.2f}</td>" in text


def test_eval_fuse_html_shows_each_mode_and_the_best_view(tmp_path: Path, clip: Path) -> None:
    page = tmp_path / "fuse.html"
    result = run_cli("eval", "fuse", str(clip), "--views", "2", "--max-frames", "4", "--device", "cpu", "--json",
                     "--html", str(page))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    best = next(row for row in rows if row["mode"] == "best_view")
    modes = [row["mode"] for row in rows if row["mode"] != "best_view"]
    _check_page(page, ["original", *modes, f"best view (view{best['view']})"])


def test_several_clips_get_one_page_each(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{name}.mp4", moving_frames(5, seed=k)) for k, name in enumerate(("a", "b"))]
    page = tmp_path / "report.html"
    result = run_cli("eval", "interpolate", *map(str, clips), "--model", "blend", "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert not page.exists()
    for name in ("a", "b"):
        _check_page(tmp_path / f"report.{name}.html", ["original", "blend.average"])


def test_a_bad_page_is_refused_in_one_line_before_any_work(tmp_path: Path, clip: Path) -> None:
    evals = [["eval", "interpolate", str(clip), "--model", "blend"], ["eval", "compare", str(clip), str(clip)],
             ["eval", "upscale", str(clip), "--model", "bicubic"], ["eval", "fuse", str(clip)],
             ["eval", "reconstruct", str(clip)]]
    for args in evals:
        _one_line(run_cli(*args, "--html", str(tmp_path / "report.txt")), 2, "--html", ".html file")
    (tmp_path / "a_file").write_text("")
    _one_line(run_cli(*evals[0], "--html", str(tmp_path / "a_file" / "r.html")), 2, "is a file, not a folder")
    (tmp_path / "folder.html").mkdir()
    _one_line(run_cli(*evals[0], "--html", str(tmp_path / "folder.html")), 2, "is a folder")
    as_page = tmp_path / "clip.html"  # an input that happens to end in .html
    shutil.copy(clip, as_page)
    _one_line(run_cli("eval", "compare", str(clip), str(as_page), "--html", str(as_page)), 2, "is one of the inputs")
    _one_line(run_cli("eval", "interpolate", str(as_page), "--model", "blend", "--html", str(as_page)), 2,
              "is one of the inputs")
    inside = tmp_path / "r_files" / "keep.mp4"
    inside.parent.mkdir()
    shutil.copy(clip, inside)
    _one_line(run_cli("eval", "compare", str(clip), str(inside), "--html", str(tmp_path / "r.html"), "--overwrite"),
              2, "media folder")
    assert inside.exists()
    duplicate = tmp_path / "other" / "clip.mkv"
    duplicate.parent.mkdir()
    shutil.copy(clip, duplicate)
    _one_line(run_cli("eval", "interpolate", str(clip), str(duplicate), "--model", "blend", "--html",
                      str(tmp_path / "two.html")), 2, "same name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "clip.html", "clip.mkv", "folder.html", "other",
                                                          "r_files"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_page_in_a_read_only_folder_is_refused(tmp_path: Path, clip: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _one_line(run_cli("eval", "interpolate", str(clip), "--model", "blend", "--html", str(locked / "r.html")), 1,
                  "permission denied")
    finally:
        locked.chmod(0o700)


def test_a_failed_eval_writes_no_page_and_leaves_nothing(tmp_path: Path) -> None:
    short = write_clip(tmp_path / "short.mp4", moving_frames(2))
    page = tmp_path / "report.html"
    result = run_cli("eval", "interpolate", str(short), "--model", "blend", "--html", str(page))
    _one_line(result, 1, "at least 3 frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.mp4"]


def test_generate_says_it_has_no_page() -> None:
    result = run_cli("eval", "generate", "--help")
    assert result.returncode == 0
    assert "--html" not in result.stdout.split("Options")[1]
    assert "no reference" in " ".join(result.stdout.split())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium; .ci/run installs it)")
def test_an_eval_page_of_three_videos_plays_in_a_headless_browser(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(25, 96, 64))
    page = tmp_path / "report.html"
    assert run_cli("eval", "interpolate", str(clip), "--model", "blend,flow", "--html", str(page)).returncode == 0
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=8000", "--dump-dom", page.resolve().as_uri() + "#selftest"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    status = done.stdout.split('<div id="status"')[1].split(">")[0]
    assert 'data-selftest="done"' in status and 'data-played="1"' in status, status
    assert '<pre id="errors"></pre>' in done.stdout
    assert done.stdout.count('<video class="clip"') == 3  # side by side: the original and both models
