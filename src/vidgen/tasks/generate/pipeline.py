"""`vidgen generate`: a prompt becomes a video file, through an in-house or a diffusers model.

Two kinds of generate entries share this one path:
- in-house `video-gpt` models: the text encoder (`config.text_encoder`: a registry sentence encoder such as
  MiniLM, or "words", the model's own word encoder) encodes the prompt, VideoGPT samples a (T, h, w) grid
  of VQ tokens (seeded CPU generator, so a seed gives the same video anywhere), the tokenizer
  (`config.tokenizer`, a vqvae entry) decodes them to T keyframes;
- `format = "diffusers"` entries (Wan, LTX-Video, CogVideoX): `vidgen.tasks.generate.diffusers.generate_frames`.
Then, for both, `--interpolate xK` inserts K-1 frames between consecutive frames with an interpolation
model (keyframes then interpolation: T frames become (T-1)*K+1 at K times the rate, no held frames),
`--size` resizes, `--frames` keeps the first N, and the frames are written with `VideoWriter` (atomic:
nothing appears under the final name until the file is complete).
"""

from __future__ import annotations

import contextlib
import re
import time as clock
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.progress import ProgressCallback
from vidgen.video.encode import EncodeOptions, Encoding, plan_encoding
from vidgen.video.outputs import claim_output

Warn = Callable[[str], None]
# Generated frames are sRGB; tag them as BT.709 limited range, which players assume for HD anyway.
_BT709 = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1, "matrix": 1, "full_range": False}
# Interpolation model for --interpolate unless --interp-model says otherwise: the classical optical-flow engine,
# which needs no weights (so the built-in generator stays offline) and suits the flat, fast-moving generated frames.
DEFAULT_INTERPOLATOR = "flow"


@dataclass
class GenerateSettings:
    """Everything `vidgen generate` takes besides the prompt and the output path (None: the model's default)."""

    model: str | None = None
    frames: int | None = None
    fps: float | None = None
    size: tuple[int, int] | None = None  # (width, height)
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    interpolate: int = 1
    interpolator: str | None = None
    device: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    negative_prompt: str | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False


@dataclass
class GenerateResult:
    prompt: str
    model: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    seed: int
    seconds: float
    keyframes: int
    interpolate: int = 1
    interpolator: str | None = None
    unknown_words: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_SIDE = 8192


def parse_size(text: str) -> tuple[int, int]:
    """'832x480' -> (832, 480); each side from 8 to MAX_SIDE pixels."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not all(8 <= int(side) <= MAX_SIDE for side in (match[1], match[2])):
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 832x480, each side from 8 to {MAX_SIDE}")
    return int(match[1]), int(match[2])


def parse_factor(text: str) -> int:
    """'x2' / '2' -> 2; 1 means no interpolation."""
    match = re.fullmatch(r"\s*[xX]?(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= 16:
        raise UsageError(f"--interpolate {text!r}: expected x2, x4 (a factor from 1 to 16)")
    return int(match[1])


def read_prompts(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise UsageError(f"--prompts {path}: no such file")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise UsageError(f"--prompts {path}: no prompts in it", hint="write one prompt per line")
    return prompts


def output_name(index: int, prompt: str, suffix: str = ".mp4") -> str:
    """`0003-a-cat-dancing.mp4`: the line number keeps names unique and sorted, the words make them readable."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].rstrip("-") or "video"
    return f"{index:04d}-{slug}{suffix}"


class InHouseGenerator:
    """A `video-gpt` entry with its tokenizer and text encoder (its own word encoder, or the entry its config
    names, both loaded by the registry), loaded once for many prompts."""

    def __init__(self, entry: Any, device: str) -> None:
        from vidgen.registry import load_for_task
        from vidgen.runtime.devices import resolve_device

        self.entry = entry
        self.device = resolve_device(device)
        loaded = load_for_task("generate", entry, device=str(self.device))
        self.model = loaded.model
        if "tokenizer" not in loaded.parts:
            raise UsageError(f"{entry.name}: its config names no tokenizer", hint="set config.tokenizer in the entry")
        self.tokenizer = loaded.parts["tokenizer"].model
        self.text_encoder = self.model.words if self.model.words is not None else loaded.parts["text_encoder"].model

    def unknown_words(self, prompt: str) -> list[str]:
        return self.model.unknown_words(prompt)

    def frames(self, prompt: str, settings: GenerateSettings,
               progress: ProgressCallback | None = None) -> tuple[np.ndarray, Fraction]:
        return self.frames_batch([prompt], [settings.seed], settings)[0], self.fps

    @property
    def fps(self) -> Fraction:
        return Fraction(self.model.fps).limit_denominator(1001)

    def sampling(self, settings: GenerateSettings) -> tuple[float, float]:
        """(guidance, temperature): the ones given, else the model's recommended ones."""
        return (self.model.guidance if settings.guidance is None else settings.guidance,
                self.model.temperature if settings.temperature is None else settings.temperature)

    def frames_batch(self, prompts: list[str], seeds: list[int], settings: GenerateSettings) -> list[np.ndarray]:
        """Keyframes (T,H,W,3) uint8 per prompt; prompt i is sampled from its own generator seeded seeds[i],
        so its video is the same alone or in a batch."""
        import torch

        from vidgen.runtime.devices import one_thread

        for option, value in (("--steps", settings.steps), ("--negative-prompt", settings.negative_prompt)):
            if value is not None:
                raise UsageError(f"{option} applies to diffusion models; {self.entry.name} samples tokens",
                                 hint="use --temperature, --top-k, --top-p and --guidance")
        if settings.cpu_offload or settings.vae_tiling:
            raise UsageError(f"--cpu-offload/--vae-tiling apply to diffusers models, not {self.entry.name}")
        guidance, temperature = self.sampling(settings)
        embeddings = self.text_encoder.encode(prompts)
        generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        # Token-by-token decoding is thousands of tiny ops: one CPU thread is faster than several.
        threads = one_thread() if self.device.type == "cpu" else contextlib.nullcontext()
        with threads, torch.inference_mode():
            tokens = self.model.sample(
                embeddings.tokens.to(self.device), embeddings.mask.to(self.device),
                temperature=temperature, top_k=settings.top_k, top_p=settings.top_p, guidance=guidance,
                generator=generators)
            video = self.tokenizer.decode(tokens)  # (B, T, 3, H, W) in [0, 1]
        frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
        return list(frames)


class DiffusersGenerator:
    """A `format = "diffusers"` entry; its pipeline is loaded by `generate_frames` (cached there)."""

    def __init__(self, entry: Any, device: str) -> None:
        self.entry, self.device = entry, device

    def unknown_words(self, prompt: str) -> list[str]:
        return []

    def frames(self, prompt: str, settings: GenerateSettings,
               progress: ProgressCallback | None = None) -> tuple[np.ndarray, Fraction]:
        from vidgen.tasks.generate.diffusers import generate_frames

        for option, value in (("--top-k", settings.top_k), ("--top-p", settings.top_p),
                              ("--temperature", settings.temperature)):
            if value is not None:
                raise UsageError(f"{option} applies to token samplers, not the diffusion model {self.entry.name}")
        size = settings.size if settings.interpolate == 1 else None
        frames, fps = generate_frames(
            self.entry, prompt, frames=settings.frames if settings.interpolate == 1 else None, size=size,
            fps=settings.fps, steps=settings.steps, guidance=settings.guidance, seed=settings.seed,
            device=self.device, cpu_offload=settings.cpu_offload, vae_tiling=settings.vae_tiling,
            negative_prompt=settings.negative_prompt, progress=progress)
        return frames.numpy(), Fraction(fps)


def load_generator(model: str | None, device: str = "auto") -> InHouseGenerator | DiffusersGenerator:
    """The generator for a registry name (None: the task's default): in-house, or a diffusers pipeline."""
    from vidgen import registry

    entry = registry.resolve(model) if model else registry.default_entry("generate")
    if entry.task != "generate":
        raise UsageError(f"--model {model}: is a {entry.task} model, not a text-to-video model",
                         hint="see `vidgen models list --task generate`")
    return DiffusersGenerator(entry, device) if entry.format == "diffusers" else InHouseGenerator(entry, device)


def interpolate_frames(frames: np.ndarray, factor: int, model: str | None, device: str) -> tuple[np.ndarray, str]:
    """(T,H,W,3) uint8 -> ((T-1)*factor+1, H, W, 3): factor-1 frames between each consecutive pair."""
    from vidgen.tasks.interpolate.job import load_engine

    name, engine = load_engine(model, device)
    times = [k / factor for k in range(1, factor)]
    out = [frames[:1]]
    for first, second in zip(frames[:-1], frames[1:]):
        middle = engine.interpolate(first[None], second[None], times)[0]
        out.extend([middle, second[None]])
    return np.concatenate(out), name


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    width, height = size
    if frames.shape[1:3] == (height, width):
        return frames
    shrink = width * height < frames.shape[1] * frames.shape[2]
    mode = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.stack([cv2.resize(frame, (width, height), interpolation=mode) for frame in frames])


def plan_output(output: Path, settings: GenerateSettings, width: int, height: int, fps: Fraction) -> Encoding:
    """The checked encoding of generated (sRGB, 8-bit) frames of this size (see `vidgen.video.encode`)."""
    return plan_encoding(output, settings.encode, width=width, height=height, source_pix_fmt="yuv420p", rate=fps)


def write_frames(frames: np.ndarray, output: Path, fps: Fraction, settings: GenerateSettings) -> None:
    """Encode (T,H,W,3) uint8 RGB frames (their size checked against the encoder first, see `plan_output`)."""
    from vidgen.video.colour import ColourSpec
    from vidgen.video.writer import VideoWriter

    height, width = frames.shape[1:3]
    encoding = plan_output(output, settings, width, height, fps)
    writer = VideoWriter(output, rate=fps, width=width, height=height, encoding=encoding, colour=ColourSpec(**_BT709))
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
        writer.close()
    except BaseException:
        writer.abort()
        raise


def generate_video(prompt: str, output: str | Path, settings: GenerateSettings,
                   generator: InHouseGenerator | DiffusersGenerator | None = None,
                   warn: Warn | None = None, progress: ProgressCallback | None = None) -> GenerateResult:
    """Generate one video for `prompt` into `output` (see the module docstring for the steps); `progress`
    follows a diffusers model's denoising steps."""
    from vidgen.video.reader import is_sequence_pattern

    started = clock.perf_counter()
    output_path = Path(output)
    if not prompt.strip():
        raise UsageError("the prompt is empty", hint='vidgen generate "a cat dancing" -o cat.mp4')
    if is_sequence_pattern(output_path):
        raise UsageError(f"-o {output_path}: generate writes video files, not image sequences")
    if settings.size is not None:  # the encoder's constraints, before any model runs
        plan_output(output_path, settings, *settings.size, Fraction(settings.fps or 8).limit_denominator(1001))
    with claim_output(output_path, [], settings.overwrite):
        return _generate(prompt, output_path, settings, generator, warn, started, progress)


def _generate(prompt: str, output_path: Path, settings: GenerateSettings,
              generator: InHouseGenerator | DiffusersGenerator | None, warn: Warn | None,
              started: float, progress: ProgressCallback | None = None) -> GenerateResult:
    generator = generator or load_generator(settings.model, settings.device)
    unknown = generator.unknown_words(prompt)
    if unknown and warn:
        warn(f"{generator.entry.name} never saw {', '.join(repr(word) for word in unknown)} in training; the video "
             "may ignore them (an open-domain model such as --model wan understands free text)")
    frames, fps = generator.frames(prompt, settings, progress)
    keyframes = len(frames)
    interpolator = None
    if settings.interpolate > 1:
        if keyframes < 2:
            raise UsageError("--interpolate needs at least two generated frames")
        choice = settings.interpolator or DEFAULT_INTERPOLATOR
        frames, interpolator = interpolate_frames(frames, settings.interpolate, choice, settings.device)
        fps *= settings.interpolate
    if settings.frames is not None:
        if settings.frames > len(frames):
            raise UsageError(f"--frames {settings.frames}: {generator.entry.name} makes {len(frames)} frames here",
                             hint="ask for fewer, or add --interpolate x2/x4 for more")
        frames = frames[:settings.frames]
    if settings.fps is not None and isinstance(generator, InHouseGenerator):
        fps = Fraction(settings.fps).limit_denominator(1001)  # playback rate only; the motion is what was sampled
    if settings.size is not None:
        frames = _resize(frames, settings.size)
    write_frames(frames, output_path, fps, settings)
    return GenerateResult(prompt=prompt, model=generator.entry.name, output=str(output_path), frames=len(frames),
                          fps=float(fps), width=frames.shape[2], height=frames.shape[1], seed=settings.seed,
                          seconds=round(clock.perf_counter() - started, 3), keyframes=keyframes,
                          interpolate=settings.interpolate, interpolator=interpolator, unknown_words=unknown)


__all__ = ["DEFAULT_INTERPOLATOR", "GenerateResult", "GenerateSettings", "generate_video", "interpolate_frames",
           "load_generator", "output_name", "parse_factor", "parse_size", "read_prompts"]
