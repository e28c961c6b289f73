"""`--crf` on every encoder with a constant-quality mode, hardware encoders included (video/encode.QUALITY)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.helpers import run_cli
from vidgen.errors import UsageError
from vidgen.video.encode import QUALITY, Encoding, check_crf, hardware_needed


@pytest.mark.parametrize(("codec", "crf", "expected"), [
    ("libx264", 23, {"crf": "23"}),
    ("libx264", None, {"crf": "18"}),
    ("h264_nvenc", 23, {"rc": "vbr", "b": "0", "cq": "23"}),
    ("hevc_nvenc", None, {"rc": "vbr", "b": "0", "cq": "21"}),
    ("av1_nvenc", 40, {"rc": "vbr", "b": "0", "cq": "40"}),
    ("h264_qsv", 25, {"global_quality": "25"}),
    ("av1_qsv", 120, {"global_quality": "120"}),
    ("h264_amf", 22, {"rc": "cqp", "qp_i": "22", "qp_p": "22", "qp_b": "22"}),
])
def test_crf_becomes_each_encoders_constant_quality_option(codec: str, crf: int | None, expected: dict) -> None:
    assert Encoding(codec, "yuv420p", crf, None).encoder_options() == expected


def test_crf_ranges_are_the_encoders() -> None:
    check_crf("h264_nvenc", 51)
    check_crf("av1_nvenc", 63)
    with pytest.raises(UsageError, match="--crf 0: h264_nvenc takes 1 to 51"):
        check_crf("h264_nvenc", 0)
    with pytest.raises(UsageError, match="--crf 52: hevc_qsv takes 1 to 51"):
        check_crf("hevc_qsv", 52)
    with pytest.raises(UsageError, match="--crf: ffv1 has no constant-quality mode"):
        check_crf("ffv1", 10)


def test_every_listed_encoder_with_crf_is_known_to_ffmpeg_or_absent_from_this_build() -> None:
    """The table names encoders by FFmpeg's names: each one PyAV knows is a video encoder."""
    for codec in QUALITY:
        try:
            found = av.codec.Codec(codec, "w")
        except Exception:  # this FFmpeg build lacks it
            continue
        assert found.type == "video", codec


def test_hardware_is_named() -> None:
    assert "NVIDIA" in (hardware_needed("hevc_nvenc") or "")
    assert "Quick Sync" in (hardware_needed("h264_qsv") or "")
    assert hardware_needed("libx264") is None


def _encoder_opens(codec: str) -> bool:
    try:
        context = av.codec.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt = 64, 64, "yuv420p"
        context.time_base = "1/25"
        context.open()
    except Exception:
        return False
    return True


@pytest.mark.skipif(_encoder_opens("h264_nvenc"), reason="this machine has NVENC")
def test_a_missing_hardware_encoder_is_one_line_naming_the_hardware(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "out.mp4"
    result = run_cli("interpolate", str(clip), "-m", "blend", "--codec", "h264_nvenc", "--crf", "23", "-o", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "h264_nvenc could not be started" in lines[0] and "NVIDIA" in lines[0], lines
    assert "libx264" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("codec", ["libx265", "libsvtav1"])
def test_encoder_libraries_print_nothing_past_quiet(codec: str, tmp_path: Path) -> None:
    # x265 prints "encoded N frames ..." and SVT-AV1 a banner to stderr themselves, not through FFmpeg's log
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec}")
    from tests.helpers import moving_frames, run_vidgen, write_clip

    clip = write_clip(tmp_path / "in.mkv", moving_frames(6), codec="ffv1", pix_fmt="yuv420p", options={})
    result = run_vidgen("interpolate", str(clip), "--x2", "-m", "blend", "--codec", codec, "-o",
                        str(tmp_path / "out.mkv"), "-q")
    assert result.returncode == 0 and result.stderr == b"", result.stderr[-500:]


@pytest.mark.parametrize(("suffix", "codec"), [(".y4m", "wrapped_avframe"), (".gif", "gif")])
def test_y4m_and_gif_outputs_get_an_encoder_they_hold(suffix: str, codec: str, tmp_path: Path, clip: Path) -> None:
    out = tmp_path / f"out{suffix}"
    result = run_cli("interpolate", str(clip), "--x2", "-m", "blend", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 18


def test_a_codec_the_container_refuses_in_its_header_is_one_line_before_any_work(tmp_path: Path, clip: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # YUV4MPEG accepts the stream and the encoder, and refuses only when its header is written
    from vidgen.tasks.interpolate import job

    monkeypatch.setattr(job, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    out = tmp_path / "out.y4m"
    result = run_cli("interpolate", str(clip), "--x2", "--codec", "libx264", "-o", str(out))
    assert result.returncode == 2
    assert f"{out}: a yuv4mpegpipe file cannot hold libx264 video" in result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == [clip]  # nothing written
