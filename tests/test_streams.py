"""What interpolate carries over besides video frames: tags, chapters, re-encoded audio, HDR metadata."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import moving_frames, run_vidgen, stream_bytes

from vidgen.tasks.interpolate.pipeline import interpolate_video
from vidgen.video.encode import EncodeOptions
from vidgen.video.reader import HdrMetadata, probe


def write_with(path: Path, codec: str = "libx264", pix_fmt: str = "yuv420p", options: dict | None = None,
               audio: str | None = None, setup=None, count: int = 12) -> Path:
    """A 64x48 24 fps clip; `audio`: an audio codec for a 1 kHz stereo tone as long as the video; `setup(container, video)`."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, pix_fmt
        video.options = options or {}
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        if setup:
            setup(container, video)
        for i, rgb in enumerate(moving_frames(count)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            container.mux(video.encode(frame))
        if sound is not None:
            samples = count * 2000  # 48000 / 24 per video frame
            tone = (np.sin(np.arange(samples) * 2 * np.pi * 1000 / 48000) * 8000).astype(np.int16)
            for start in range(0, samples, 1000):
                chunk = np.repeat(tone[start:start + 1000], 2)[None]  # interleaved stereo
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
                frame.sample_rate, frame.pts = 48000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        container.mux(video.encode(None))
    return path


def _tag(container, video) -> None:
    container.metadata["title"] = "A short film"
    video.metadata["language"] = "fra"
    video.metadata["handler_name"] = "Camera A"
    container.set_chapters([
        {"id": 1, "start": 0, "end": 6, "time_base": Fraction(1, 24), "metadata": {"title": "Opening"}},
        {"id": 2, "start": 6, "end": 12, "time_base": Fraction(1, 24), "metadata": {"title": "Ending"}},
    ])


def _assert_tagged(out: Path) -> None:
    with av.open(str(out)) as container:
        assert container.metadata.get("title") == "A short film"
        chapters = [(float(c["start"] * c["time_base"]), c["metadata"].get("title")) for c in container.chapters()]
        assert chapters == [(0.0, "Opening"), (0.25, "Ending")]
        tags = {k.lower(): v for k, v in container.streams.video[0].metadata.items()}
        assert tags.get("language") == "fra" and tags.get("handler_name") == "Camera A"
        assert "Lavc" not in tags.get("encoder", "")  # the source's encoder tag is not carried


def test_title_chapters_and_video_stream_tags_survive(tmp_path: Path) -> None:
    source = write_with(tmp_path / "tagged.mov", setup=_tag)
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"out{suffix}"
        interpolate_video(source, out, factor=2, model="blend")
        _assert_tagged(out)


def test_a_stream_inputs_title_chapters_and_video_tags_survive(tmp_path: Path) -> None:
    # Matroska on standard input: its header carries them, read when the stream is opened
    source = write_with(tmp_path / "tagged.mkv", setup=_tag)
    out = tmp_path / "out.mkv"
    result = run_vidgen("interpolate", "-", "--x2", "-m", "blend", "-o", str(out), "-q", stdin=source.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    _assert_tagged(out)


def test_audio_the_container_cannot_hold_is_reencoded_in_sync(tmp_path: Path) -> None:
    source = write_with(tmp_path / "pcm.mkv", audio="pcm_s16le")  # Matroska PCM: an MP4 refuses its channel layout
    out = tmp_path / "out.mp4"
    result = interpolate_video(source, out, factor=2, model="blend")
    assert result.dropped_streams == ()
    assert result.reencoded_streams == ("audio stream 1 (pcm_s16le) re-encoded to aac: .mp4 cannot hold this pcm_s16le stream",)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 48000
        assert audio.codec_context.layout.name == "stereo"
        frames = list(container.decode(audio))
    start = float(frames[0].time)
    end = float(frames[-1].time) + frames[-1].samples / 48000
    assert start == pytest.approx(0, abs=0.03) and end == pytest.approx(0.5, abs=0.03)  # 12 frames at 24 fps
    pcm = np.concatenate([f.to_ndarray()[0] for f in frames])
    assert np.abs(pcm).max() > 0.1  # the tone, not silence


def test_webm_gets_opus_and_copyable_audio_is_still_copied(tmp_path: Path) -> None:
    source = write_with(tmp_path / "aac.mp4", audio="aac")
    webm = tmp_path / "out.webm"
    result = interpolate_video(source, webm, factor=2, model="blend")
    assert [line.split(":")[0] for line in result.reencoded_streams] == ["audio stream 1 (aac) re-encoded to opus"]
    with av.open(str(webm)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
    mkv = tmp_path / "out.mkv"
    assert interpolate_video(source, mkv, factor=2, model="blend").reencoded_streams == ()
    with av.open(str(source)) as src, av.open(str(mkv)) as dst:
        assert [bytes(p) for p in src.demux(audio=0) if p.size] == [bytes(p) for p in dst.demux(audio=0) if p.size]


MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


@pytest.fixture
def hdr_clip(tmp_path: Path) -> Path:
    return write_with(tmp_path / "hdr.mkv", codec="libx265", pix_fmt="yuv420p10le", count=4,
                      options={"x265-params": f"log-level=error:master-display={MASTER_DISPLAY}:max-cll=1000,400"})


def test_hdr_metadata_is_read_from_the_source(hdr_clip: Path) -> None:
    hdr = probe(hdr_clip).hdr
    assert hdr == HdrMetadata(
        primaries=((Fraction(34000, 50000), Fraction(16000, 50000)), (Fraction(13250, 50000), Fraction(34500, 50000)),
                   (Fraction(7500, 50000), Fraction(3000, 50000))),
        white_point=(Fraction(15635, 50000), Fraction(16450, 50000)),
        luminance=(Fraction(1, 10000), Fraction(1000)), max_cll=1000, max_fall=400)


@pytest.mark.parametrize("codec", ["libx265", "libx264", "libsvtav1"])
def test_hdr_metadata_is_carried_by_encoders_that_take_it(hdr_clip: Path, tmp_path: Path, codec: str) -> None:
    out = tmp_path / f"out_{codec}.mkv"
    interpolate_video(hdr_clip, out, factor=2, model="blend", encode=EncodeOptions(codec=codec))
    expected = probe(hdr_clip).hdr
    with av.open(str(out)) as container:
        first = next(container.decode(video=0))  # HDR SEI/OBUs come with the key frame
    carried = HdrMetadata.from_frame(first)
    assert carried is not None and (carried.max_cll, carried.max_fall) == (1000, 400)
    flat = lambda h: [float(v) for point in (*h.primaries, h.white_point, h.luminance) for v in point]  # noqa: E731
    assert flat(carried) == pytest.approx(flat(expected), abs=2e-4)  # AV1 stores 16.16 / 0.16 fixed point


def _first_times(path: Path | io.BytesIO, container_format: str | None = None,
                 from_video: bool = False) -> tuple[str, float, float]:
    """(audio codec, first video frame time, first audio packet time) of a file or stream; `from_video`: the
    first audio packet that starts with the video or later."""
    with av.open(path, format=container_format) as container:
        video_start = min(frame.time for frame in container.decode(video=0))
    if isinstance(path, io.BytesIO):
        path.seek(0)
    with av.open(path, format=container_format) as container:
        audio = container.streams.audio[0]
        times = [float(p.pts * p.time_base) for p in container.demux(audio) if p.pts is not None]
        audio_start = min(t for t in times if not from_video or t >= video_start - 1e-4)
        return audio.codec_context.name, video_start, audio_start


@pytest.mark.parametrize("suffix", [".ts", ".nut", ".mkv", ".mp4"])
def test_aac_is_copied_in_sync_across_joined_parts(suffix: str, tmp_path: Path) -> None:
    # MPEG-TS holds AAC (PyAV's query of its muxer lists only MPEG-1/2, and the audio was dropped); MPEG-TS
    # and NUT parts start after the B-frame delay, which the join once added to the video only
    source = write_with(tmp_path / "in.mp4", audio="aac", count=24)
    out = tmp_path / f"out{suffix}"
    result = interpolate_video(source, out, factor=2, model="blend", segment_pairs=5)
    assert result.dropped_streams == () and result.reencoded_streams == ()
    _, source_video, source_audio = _first_times(source)
    codec, video, audio = _first_times(out)
    assert codec == "aac"
    assert video - audio == pytest.approx(source_video - source_audio, abs=0.002)


def test_a_stream_inputs_aac_goes_into_an_mpegts_stream_output(tmp_path: Path) -> None:
    data = stream_bytes(24, container="mpegts", codec="libx264", audio="aac")
    result = run_vidgen("interpolate", "-", "--x2", "-m", "blend", "-o", "-", "--format", "mpegts", "-q", stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    codec, video, audio = _first_times(io.BytesIO(result.stdout), "mpegts")
    # a stream input's audio from its first video frame on (the AAC priming packet before it is left out)
    _, source_video, source_audio = _first_times(io.BytesIO(data), "mpegts", from_video=True)
    assert codec == "aac"
    assert video - audio == pytest.approx(source_video - source_audio, abs=0.002)


def test_avi_with_copied_aac_has_no_gap_after_the_first_frame(tmp_path: Path) -> None:
    # The AAC priming packet starts before the video; AVI's shift of negative timestamps put two empty
    # frames after the first one. AVI times its audio by sample count, so nothing is shifted there now.
    source = write_with(tmp_path / "in.mp4", audio="aac", count=24)
    out = tmp_path / "out.avi"
    interpolate_video(source, out, factor=2, model="blend", segment_pairs=5)
    streamed = run_vidgen("interpolate", str(source), "--x2", "-m", "blend", "-o", "-", "--format", "avi", "-q")
    assert streamed.returncode == 0, streamed.stderr.decode()[-300:]
    for made, container_format in ((out, None), (io.BytesIO(streamed.stdout), "avi")):
        with av.open(made, format=container_format) as container:
            assert container.streams.audio[0].codec_context.name == "aac"
            assert [frame.pts for frame in container.decode(video=0)] == list(range(48))
