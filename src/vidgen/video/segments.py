"""Segmented output: parts in a work folder beside the output, joined by stream copy when all are done.

Every run writes its video as numbered parts of `segment_pairs` source pairs each (a part is a
complete, independently decodable file) and records finished parts in a manifest, each with its size
and sha256, after the part and then the manifest are flushed to disk. Joining them is a packet remux,
cheap next to interpolation, and is when audio and subtitles are copied in. An interrupted run
(Ctrl-C, kill, crash, power loss) leaves finished parts behind; `resume=True` with the same input and
settings re-checks every recorded part and picks up after the last one that is intact (a damaged or
missing part is made again, with every part after it). The folder belongs to the run that holds the
output's lock (`vidgen.video.outputs.claim_output`), so two runs never share it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen.files import atomic_output, fsync_path, remove, sha256_file, temp_dir_beside
from vidgen.video.reader import is_sequence_pattern, sequence_files
from vidgen.video.remux import StreamCopier, StreamReport, muxer_options
from vidgen.video.writer import VideoWriter

DEFAULT_SEGMENT_PAIRS = 240


def work_dir_for(output: Path) -> Path:
    # No '%' in the folder name: FFmpeg's image2 muxer would read it as part of the pattern.
    return output.parent / f".{output.name.replace('%', '_')}.vidgen-parts"


class SegmentedOutput:
    def __init__(
        self,
        output: Path,
        signature: dict[str, Any],
        make_writer: Callable[[Path], VideoWriter],
        rate: Fraction,
        copy_streams_from: Path | None,
        segment_pairs: int = DEFAULT_SEGMENT_PAIRS,
        resume: bool = False,
    ) -> None:
        self.output = output
        self.work_dir = work_dir_for(output)
        self.segment_pairs = segment_pairs
        self._signature = signature
        self._make_writer = make_writer
        self._rate = rate
        self._copy_from = copy_streams_from
        self._writer: VideoWriter | None = None
        self.parts: list[dict[str, Any]] = self._load_manifest() if resume else []
        if not self.parts and self.work_dir.exists():
            shutil.rmtree(self.work_dir)  # a stale or different job: start over
        self.work_dir.mkdir(parents=True, exist_ok=True)
        kept = {part["file"] for part in self.parts} | {self.manifest_path.name}
        for leftover in self.work_dir.iterdir():  # parts after a damaged one, and unfinished ones
            if leftover.name not in kept:
                remove(leftover)

    @property
    def manifest_path(self) -> Path:
        return self.work_dir / "manifest.json"

    def _load_manifest(self) -> list[dict[str, Any]]:
        """The recorded parts of the same job, up to the first one that is missing or not as recorded."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(manifest, dict) or manifest.get("signature") != self._signature:
            return []
        intact = []
        for part in manifest.get("parts", []):
            if not self._intact(part):
                break
            intact.append(part)
        return intact

    def _intact(self, part: Any) -> bool:
        try:
            path = self.work_dir / part["file"]
            return (path.is_file() and path.stat().st_size == part["size"]
                    and sha256_file(path) == part["sha256"] and isinstance(part["frames"], int))
        except (KeyError, TypeError, OSError):
            return False

    def _save_manifest(self) -> None:
        with atomic_output(self.manifest_path, durable=True) as tmp:
            tmp.write_text(json.dumps({"signature": self._signature, "parts": self.parts}, indent=1))

    @property
    def pairs_done(self) -> int:
        """Source pairs whose output is already in finished parts (skip them when resuming)."""
        return len(self.parts) * self.segment_pairs

    @property
    def frames_done(self) -> int:
        return sum(part["frames"] for part in self.parts)

    def write(self, frame: Any) -> None:
        if self._writer is None:
            # Image sequences are collected in QuickTime parts (it holds PNG and TIFF) and split at the end.
            suffix = ".mov" if is_sequence_pattern(self.output) else self.output.suffix
            name = f"part{len(self.parts):05d}{suffix}"
            self._writer = self._make_writer(self.work_dir / name)
        self._writer.write(frame)

    def pair_finished(self, pair_number: int) -> None:
        """Close the current part after the last pair of a segment (pairs numbered from 0 as they come)."""
        if (pair_number + 1) % self.segment_pairs == 0:
            self._finish_part()

    def _finish_part(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        fsync_path(writer.path)
        self.parts.append({"file": writer.path.name, "frames": writer.frames_written,
                           "size": writer.path.stat().st_size, "sha256": sha256_file(writer.path)})
        self._save_manifest()

    def close(self) -> StreamReport:
        """Finish the last part, join all parts (plus the source's audio, subtitles, tags, chapters) into the output.

        Returns what happened to the source's other streams (re-encoded, left out).
        """
        self._finish_part()
        parts = [self.work_dir / p["file"] for p in self.parts]
        if is_sequence_pattern(self.output):
            report = self._join_sequence(parts)
        else:
            with atomic_output(self.output) as tmp:
                report = join_parts(parts, tmp, self._rate, self._copy_from)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        return report

    def _join_sequence(self, parts: list[Path]) -> StreamReport:
        """Numbered images from 0, written in a folder beside the output first and moved into place when all
        exist; images of an earlier, longer sequence under the same pattern are removed, so the folder never
        mixes two runs."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_dir_beside(self.output)
        try:
            join_parts(parts, staging / self.output.name, self._rate, None)
            images = sorted(staging.iterdir())
            new_names = {image.name for image in images}
            for stale in sequence_files(self.output):
                if stale.name not in new_names:
                    stale.unlink()
            for image in images:
                os.replace(image, self.output.parent / image.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        dropped = ["audio/subtitle streams (an image sequence holds none)"] if self._copy_from and _has_other_streams(self._copy_from) else []
        return StreamReport(dropped=dropped)

    def abort(self) -> None:
        """Drop the unfinished part; finished parts stay for a later resume (nothing stays when there are none)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if not self.parts:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def join_parts(parts: list[Path], output: Path, rate: Fraction, copy_streams_from: Path | None) -> StreamReport:
    """Concatenate the video packets of `parts` (same codec and settings); carry over the source's other
    streams, tags and chapters (`vidgen.video.remux`)."""
    import av

    frame_duration = Fraction(1) / rate
    sequence = is_sequence_pattern(output)
    options = {"start_number": "0"} if sequence else {}
    with av.open(str(output), "w", format="image2" if sequence else None, options=options,
                 container_options=muxer_options(output)) as container:
        first = av.open(str(parts[0]))
        # opaque: take the template's codec as it is, not by name (AV1 parts decode with libdav1d,
        # which is no encoder and has no codec of that name to look up).
        template = first.streams.video[0]
        stream = container.add_stream_from_template(template, opaque=True)
        if template.codec_context.name == "rawvideo":
            # raw video's pixel format travels in its codec tag (NUT: I420, ...), which the template leaves out;
            # without it the frames are read as rgb555le. The parts are of the output's own container.
            stream.codec_context.codec_tag = template.codec_context.codec_tag
        first.close()
        # A stream copy knows no frame rate; without these the muxer records none (or 1/1000 in Matroska).
        stream.codec_context.framerate = rate
        stream.time_base = frame_duration
        copier = StreamCopier(copy_streams_from, container) if copy_streams_from else None
        if copier is not None:
            copier.tag_video(stream)
        offset_frames = 0
        for part in parts:
            with av.open(str(part)) as source:
                video = source.streams.video[0]
                time_base = Fraction(video.time_base)
                # A part starts at its first frame: containers without edit lists (MPEG-TS, NUT) start its
                # timestamps after the encoder's reordering delay, which would delay the video against audio.
                shift = round(offset_frames * frame_duration / time_base) - (video.start_time or 0)
                frames = 0
                for packet in with_decode_times(source.demux(video), frame_duration / time_base):
                    if packet.pts is not None:
                        packet.pts += shift
                        frames += 1
                    if packet.dts is not None:
                        packet.dts += shift
                    packet.stream = stream
                    container.mux(packet)
                    if copier is not None:
                        copier.copy_until(container, float((offset_frames + frames) * frame_duration))
                offset_frames += frames
        if copier is None:
            return StreamReport()
        copier.copy_until(container, None)
        copier.close()
        return copier.report


def with_decode_times(packets: Iterable[Any], frame_ticks: Fraction) -> Iterator[Any]:
    """`packets` without the empty ones, each with a decode time: Matroska and NUT give none to the packets
    before the first one whose decode time differs from its presentation time (H.264/HEVC with B-frames).
    Those get decode times counted back from the first known one, a frame (`frame_ticks`, whole ticks of
    the stream's time base) apart, as the encoder gave them; without them the muxer takes their
    presentation times, which run past the decode times that follow, and a join fails."""
    step = max(1, math.floor(frame_ticks))
    waiting: list[Any] = []
    for packet in packets:
        if packet.dts is None and packet.pts is None:
            continue
        if packet.dts is None:
            waiting.append(packet)
            continue
        for back, earlier in enumerate(reversed(waiting), 1):
            earlier.dts = min(earlier.pts, packet.dts - back * step)
        yield from waiting
        waiting.clear()
        yield packet
    # None known (a part shorter than the reordering delay): the presentation times in order, moved back by
    # the fewest frames that put no packet's decode time after its presentation time.
    ordered = sorted(packet.pts for packet in waiting)
    delay = max((ordered[i] - packet.pts for i, packet in enumerate(waiting)), default=0)
    back = math.ceil(max(delay, 0) / step) * step
    for i, packet in enumerate(waiting):
        packet.dts = ordered[i] - back
        yield packet


def _has_other_streams(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return any(s.type in ("audio", "subtitle") for s in container.streams)

