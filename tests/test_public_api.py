"""The library as a user imports it: only `import vidgen` names. Each task's function runs on a tiny clip and
returns its result dataclass; bad input raises the typed errors; the signatures are real and typed; importing
vidgen loads no torch; `__all__` is complete; the package is marked typed."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers import moving_frames, write_clip

import vidgen

FUNCTIONS = {
    "interpolate": "InterpolationResult",
    "upscale": "UpscaleResult",
    "reconstruct": "ReconstructResult",
    "fuse": "FuseResult",
    "generate": "GenerateResult",
    "evaluate": "EvaluationResult",
}
FRAME_OBJECTS = ("Interpolator", "Upscaler", "Reconstructor")


def codec_of(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name


# --- the surface -----------------------------------------------------------------------------------


def test_import_vidgen_loads_neither_torch_nor_the_tasks() -> None:
    code = ("import sys, typing, vidgen; before = sorted(m for m in sys.modules if m.startswith(('torch', 'vidgen.')));"
            "[typing.get_type_hints(getattr(vidgen, n)) for n in ('interpolate', 'upscale', 'reconstruct', 'fuse',"
            " 'generate', 'evaluate')]; [getattr(vidgen, n) for n in vidgen.__all__];"
            "print(before, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['vidgen.errors']", "False"], done.stdout  # nothing but the errors, even once used


def test_all_names_resolve_and_cover_the_errors() -> None:
    assert len(set(vidgen.__all__)) == len(vidgen.__all__)
    for name in vidgen.__all__:
        assert getattr(vidgen, name) is not None, name
    assert set(vidgen.__all__) <= set(dir(vidgen))

    def subclasses(cls: type) -> set[type]:
        return {cls} | {sub for direct in cls.__subclasses__() for sub in subclasses(direct)}

    errors = subclasses(vidgen.VidgenError)
    assert len(errors) >= 16
    for error in errors:  # every typed error (all of vidgen.errors) is exported under its own name
        assert error.__name__ in vidgen.__all__ and getattr(vidgen, error.__name__) is error
    for result in (*FUNCTIONS.values(),):
        assert result in vidgen.__all__ and dataclasses.is_dataclass(getattr(vidgen, result))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vidgen.nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_have_real_typed_signatures(name: str) -> None:
    function = getattr(vidgen, name)
    parameters = inspect.signature(function).parameters.values()
    kinds = {parameter.kind for parameter in parameters}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
    hints = typing.get_type_hints(function)  # every annotation resolves
    assert all(parameter.name in hints for parameter in parameters)
    assert hints["return"] is getattr(vidgen, FUNCTIONS[name])
    options = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert len(options) >= 5 and all(p.default is not inspect.Parameter.empty for p in options)
    assert "Returns" in (function.__doc__ or "") and "Raises" in (function.__doc__ or "")
    if name != "evaluate":  # the encoder options are plain keywords
        assert {"codec", "crf", "preset", "pix_fmt"} <= {p.name for p in options}


@pytest.mark.parametrize("name", FRAME_OBJECTS)
def test_frame_objects_have_real_typed_signatures(name: str) -> None:
    cls = getattr(vidgen, name)
    assert cls.__doc__
    for method in (cls.__init__, cls.stream):
        kinds = {p.kind for p in inspect.signature(method).parameters.values()}
        assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
        typing.get_type_hints(method)
        assert method.__doc__ or method is cls.__init__


def test_the_package_is_marked_typed() -> None:
    assert (Path(vidgen.__file__).parent / "py.typed").is_file()


# --- each function on a tiny clip --------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "small.mkv", moving_frames(6, 32, 32), codec="ffv1", pix_fmt="yuv444p", options={})


def test_interpolate(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    seen = []
    result = vidgen.interpolate(small, out, factor=3, model="blend", codec="ffv1", progress=lambda d, t: seen.append(d))
    assert isinstance(result, vidgen.InterpolationResult)
    assert (result.input_frames, result.output_frames, result.model) == (6, 18, "blend.average")
    assert Fraction(result.output_rate) == 72 and codec_of(out) == "ffv1" and seen[-1] == 18
    result = vidgen.interpolate(str(small), str(tmp_path / "fps.mp4"), fps="48", model="blend", crf=30, preset="ultrafast")
    assert result.output_rate == "48" and codec_of(tmp_path / "fps.mp4") == "h264"


def test_upscale(small: Path, tmp_path: Path) -> None:
    result = vidgen.upscale(small, tmp_path / "big.mkv", factor=2, model="lanczos", codec="ffv1", pix_fmt="bgr0")
    assert isinstance(result, vidgen.UpscaleResult)
    assert (result.output_size, result.output_frames, result.model) == ("64x64", 6, "resize.lanczos")
    result = vidgen.upscale(small, tmp_path / "tall.mp4", height=48, model="bicubic", interpolate=2,
                            interpolate_model="blend", order="interpolate-first")
    assert (result.output_size, result.output_frames, result.interpolation_model) == ("48x48", 12, "blend.average")


def test_reconstruct_and_back_from_latents(small: Path, tmp_path: Path) -> None:
    out, latents = tmp_path / "round.mkv", tmp_path / "clip.latents.safetensors"
    result = vidgen.reconstruct(small, out, save_latents=latents, device="cpu", codec="ffv1")
    assert isinstance(result, vidgen.ReconstructResult)
    assert result.frames == 6 and result.psnr is not None and result.latents == str(latents) and out.is_file()
    back = vidgen.reconstruct(output=tmp_path / "back.mkv", from_latents=latents, device="cpu", codec="ffv1")
    assert isinstance(back, vidgen.ReconstructResult) and back.frames == 6 and back.psnr is None
    with pytest.raises(vidgen.UsageError, match="give no input"):
        vidgen.reconstruct(small, tmp_path / "x.mkv", from_latents=latents)
    with pytest.raises(vidgen.UsageError, match="nothing to write"):
        vidgen.reconstruct(small)


def test_fuse(small: Path, tmp_path: Path) -> None:
    other = write_clip(tmp_path / "other.mkv", moving_frames(6, 32, 32, seed=1), codec="ffv1", pix_fmt="yuv444p", options={})
    warnings: list[str] = []
    result = vidgen.fuse([small, other], tmp_path / "fused.mkv", mode="median", codec="ffv1", warn=warnings.append)
    assert isinstance(result, vidgen.FuseResult)
    assert (result.frames, result.mode, result.model, result.width) == (6, "median", None, 32) and warnings == []
    learned = vidgen.fuse([small, other], tmp_path / "learned.mp4", device="cpu")
    assert learned.model == "fusion.small" and learned.frames == 6


def test_generate(tmp_path: Path) -> None:
    result = vidgen.generate("the digit 3 is moving left", tmp_path / "three.mp4", size=(32, 32), seed=1, device="cpu")
    assert isinstance(result, vidgen.GenerateResult)
    assert (result.model, result.width, result.height, result.seed, result.frames) == ("video-gpt.digits", 32, 32, 1, 4)
    assert (tmp_path / "three.mp4").is_file()


def test_evaluate(small: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    result = vidgen.evaluate("interpolate", small, models="blend", progress=lambda done, total: seen.append(done))
    assert isinstance(result, vidgen.EvaluationResult) and seen[-1] == 6
    assert [row["model"] for row in result.rows] == ["blend.average"] and result.rows[0]["factor"] == 2
    upscaled = vidgen.evaluate("upscale", [small, small], models=["lanczos"], factor=2, max_frames=3)
    assert [row["model"] for row in upscaled.rows] == ["resize.lanczos", "resize.bicubic"] * 2
    assert all(row["frames"] == 3 for row in upscaled.rows)
    rebuilt = vidgen.evaluate("reconstruct", small, device="cpu")
    assert rebuilt.rows[0]["model"] == "v2v.small" and rebuilt.rows[0]["psnr"] > 0
    fused = vidgen.evaluate("fuse", small, views=2, seed=3)
    assert [row["mode"] for row in fused.rows] == ["learned:fusion.small", "mean", "median", "best_view"]
    assert fused.to_dict()["task"] == "fuse"


@pytest.mark.slow
def test_evaluate_generate() -> None:
    pytest.importorskip("sklearn")
    seen: list[tuple[int, int | None]] = []
    result = vidgen.evaluate("generate", per_combo=1, device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert isinstance(result, vidgen.EvaluationResult) and seen == [(20, 40), (40, 40)]
    (row,) = result.rows
    assert row["model"] == "video-gpt.digits" and row["all"]["count"] == 40


# --- typed errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda missing, out: vidgen.interpolate(missing, out, model="blend"),
    lambda missing, out: vidgen.upscale(missing, out, model="lanczos"),
    lambda missing, out: vidgen.reconstruct(missing, out),
    lambda missing, out: vidgen.fuse([missing, missing], out, mode="mean"),
    lambda missing, out: vidgen.evaluate("interpolate", missing, models="blend"),
    lambda missing, out: vidgen.evaluate("upscale", missing, models="lanczos"),
    lambda missing, out: vidgen.evaluate("reconstruct", missing),
    lambda missing, out: vidgen.evaluate("fuse", missing),
])
def test_a_missing_file_is_an_input_not_found_error_naming_it(tmp_path: Path, call) -> None:
    missing = tmp_path / "no-such-clip.mp4"
    with pytest.raises(vidgen.InputNotFoundError) as raised:
        call(missing, tmp_path / "out.mkv")
    assert isinstance(raised.value, vidgen.VidgenError)
    assert "no-such-clip.mp4" in raised.value.message and "\n" not in raised.value.message
    assert not (tmp_path / "out.mkv").exists()


def test_an_existing_output_is_kept(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep.mkv"
    out.write_bytes(b"precious")
    with pytest.raises(vidgen.OutputExistsError):
        vidgen.upscale(small, out, model="lanczos")
    assert out.read_bytes() == b"precious"
    assert vidgen.upscale(small, out, model="lanczos", overwrite=True).output_frames == 6


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda clip, out: vidgen.interpolate(clip, out, model="no-such-model"), vidgen.UnknownModelError, "no-such-model"),
    (lambda clip, out: vidgen.interpolate(clip, out, model="blend", precision="fp8"), vidgen.UsageError, "fp8"),
    (lambda clip, out: vidgen.interpolate(clip, out, model="blend", crf=-1), vidgen.UsageError, "crf -1"),
    (lambda clip, out: vidgen.interpolate(clip, out, model="blend", scene_threshold=-1), vidgen.UsageError,
     "scene_threshold -1"),
    (lambda clip, out: vidgen.upscale(clip, out, model="lanczos", height=0), vidgen.UsageError, "height 0"),
    (lambda clip, out: vidgen.upscale(clip, out, model="blend"), vidgen.UsageError, "not an upscale model"),
    (lambda clip, out: vidgen.upscale(clip, out, model="lanczos", order="sideways"), vidgen.UsageError, "sideways"),
    (lambda clip, out: vidgen.fuse([clip], out, mode="best"), vidgen.UsageError, "best"),
    (lambda clip, out: vidgen.generate("", out), vidgen.UsageError, "empty"),
    (lambda clip, out: vidgen.generate("a cat", out, size=(4, 4)), vidgen.UsageError, "4x4"),
    (lambda clip, out: vidgen.generate("a cat", out, interpolate=40), vidgen.UsageError, "40"),
    (lambda clip, out: vidgen.generate("a cat", out, seed=-1), vidgen.UsageError, "seed -1"),
    (lambda clip, out: vidgen.evaluate("interpolate", clip, views=2), vidgen.UsageError, "views does not apply"),
    (lambda clip, out: vidgen.evaluate("generate", clip), vidgen.UsageError, "takes no clips"),
    (lambda clip, out: vidgen.evaluate("upscale", [], models="lanczos"), vidgen.UsageError, "at least one clip"),
    (lambda clip, out: vidgen.evaluate("translate", clip), vidgen.UsageError, "not an evaluation"),
])
def test_bad_values_are_typed_one_line_errors(small: Path, tmp_path: Path, call, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        call(small, tmp_path / "out.mkv")
    assert message in raised.value.message and "\n" not in raised.value.message
    assert not (tmp_path / "out.mkv").exists()
