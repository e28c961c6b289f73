"""The comparison page, opened in a real headless browser: it loads without errors, the videos play, the
slider moves the wipe, frame stepping works, and it renders something (a screenshot that is not blank)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import moving_frames, write_clip
from vidgen.errors import OutputExistsError, UsageError
from vidgen.metrics.report import write_comparison_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars", "--enable-logging=stderr"]


@pytest.fixture
def page(tmp_path: Path) -> Path:
    frames = moving_frames(24, 160, 96)
    reference = write_clip(tmp_path / "clean.mp4", frames)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f.astype(int) + rng.integers(-25, 26, f.shape), 0, 255).astype(np.uint8) for f in frames]
    damaged = write_clip(tmp_path / "noisy.mp4", noisy)
    return write_comparison_page([reference, damaged], tmp_path / "report.html")


def test_the_page_and_its_media_are_written_beside_each_other(page: Path) -> None:
    media = page.with_name("report_files")
    names = {p.name for p in media.iterdir()}
    assert {"video0.webm", "video1.webm"} <= names
    assert len([n for n in names if n.endswith("-v1-error.png")]) == 3  # the three worst frames' heat maps
    text = page.read_text()
    assert "report_files/video1.webm" in text and "<svg" in text and "http" not in text.split("<body>")[1]
    with pytest.raises(OutputExistsError, match="already exists"):
        write_comparison_page([page.with_name("clean.mp4"), page.with_name("noisy.mp4")], page)
    with pytest.raises(UsageError, match="two or more"):
        write_comparison_page([page.with_name("clean.mp4")], page.with_name("other.html"))


def _browser(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BROWSER, f"--user-data-dir={cwd / 'profile'}", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium; .ci/run installs it)")
def test_in_a_headless_browser_the_videos_play_the_wipe_moves_and_nothing_fails(page: Path) -> None:
    url = page.resolve().as_uri() + "#selftest"
    done = _browser("--virtual-time-budget=8000", "--dump-dom", url, cwd=page.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    status = done.stdout.split('<div id="status"')[1].split(">")[0]
    assert 'data-selftest="done"' in status and 'data-played="1"' in status, status
    assert 'data-wipe="25"' in status and "inset(0px 0px 0px 25%)" in status  # the slider moved the wipe
    assert 'data-stepped="1"' in status
    assert '<pre id="errors"></pre>' in done.stdout
    assert "Uncaught" not in done.stderr and ":CONSOLE(" not in done.stderr, done.stderr[-2000:]
    shot = page.parent / "shot.png"
    _browser("--window-size=1000,1200", "--virtual-time-budget=3000", f"--screenshot={shot}", url, cwd=page.parent)
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1200, 1000)
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # not a blank page
