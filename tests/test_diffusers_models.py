"""Pretrained models through diffusers: `format = "diffusers"` entries (folders pinned by Hub revision or tree
hash), video VAEs in `vidgen reconstruct`, and text-to-video `generate_frames`. Tiny random-weight models
are built from config and saved in tmp_path, as diffusers' own tests do; nothing touches the network.

What these tests cannot show: that the real checkpoints load and reconstruct or generate well, and that
the pinned revisions exist upstream (no Hub access here); see models.toml.
"""

from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import moving_frames, write_clip
from vidgen import tomlw as _toml, paths
from vidgen.cli import app
from vidgen.errors import DeviceError, RegistryError, UsageError, WeightsIntegrityError
from vidgen.registry import ensure_weights, list_entries, load_model, resolve, verify_cached
from vidgen.registry.entries import read_registry_file

runner = CliRunner()


def _write_overlay(models: dict[str, dict]) -> None:
    paths.user_registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.user_registry_path().write_text(_toml.dumps({"schema": 1, "models": models}, inline_depth=2),
                                          encoding="utf-8")


def _dir_entry(arch: str, task: str, folder: Path, config: dict, **source: str) -> dict:
    return {"task": task, "arch": arch, "format": "diffusers", "license": "MIT", "description": "tiny random",
            "config": config, "sources": [{"kind": "dir", "path": str(folder), **source}]}


# --- registry: parsing, pins, fetch / list / verify ------------------------------------------------


def test_diffusers_entries_parse_with_their_own_pins(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    base = ('[models."wan-vae.x"]\ntask = "reconstruct"\narch = "wan-vae"\nformat = "diffusers"\n'
            'license = "MIT"\ndescription = "d"\n')
    path.write_text(base + '[[models."wan-vae.x".sources]]\nkind = "dir"\npath = "folder"\nsubfolder = "vae"\n')
    (entry,) = read_registry_file(path)
    assert entry.needs_weights and entry.sha256 is None and entry.format == "diffusers"
    assert entry.sources[0].path == str(tmp_path / "folder"), "relative to the models.toml naming it"
    assert entry.sources[0].describe() == f"dir:{tmp_path / 'folder'}/vae"
    for bad, message in (
        (f'sha256 = "{"a" * 64}"\n[[models."wan-vae.x".sources]]\nkind = "dir"\npath = "f"\n', "no `sha256`"),
        ('[[models."wan-vae.x".sources]]\nkind = "hf"\nrepo = "a/b"\nrevision = "main"\nfilename = "x"\n',
         "unknown keys ['filename']"),
        (f'[[models."wan-vae.x".sources]]\nkind = "hf"\nrepo = "a/b"\nrevision = "main"\nsha256 = "{"a" * 64}"\n',
         "pinned by its revision"),
        ('[[models."wan-vae.x".sources]]\nkind = "url"\nurl = "https://x/y"\n', "`hf` (repo + revision) or `dir`"),
        ('[[models."wan-vae.x".sources]]\nkind = "dir"\npath = "f"\nsubfolder = "../up"\n', "relative folder"),
    ):
        path.write_text(base + bad)
        with pytest.raises(RegistryError) as caught:
            read_registry_file(path)
        assert message in caught.value.message + (caught.value.hint or "")
    path.write_text(base.replace('format = "diffusers"', 'format = "onnx"'))
    with pytest.raises(RegistryError, match="`format` must be one of"):
        read_registry_file(path)


def test_shipped_diffusers_entries_pin_commits_and_valid_settings() -> None:
    from vidgen.registry.archs import get_arch

    entries = [entry for entry in list_entries() if entry.format == "diffusers"]
    names = {entry.name for entry in entries}
    assert {"cosmos-vae.cv8x8x8-1.0", "cogvideox-vae.2b", "ltx-video-vae.0.9", "wan-t2v.2.1-1.3b",
            "ltx-video.0.9-2b", "cogvideox.2b"} <= names
    for entry in entries:
        spec = get_arch(entry.arch)
        assert spec.format == "diffusers" and spec.task == entry.task
        (source,) = entry.sources
        if entry.arch == "cosmos-vae":
            assert source.revision == "main"  # documented in models.toml: no diffusers-era commit confirmed
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", source.revision or ""), entry.name
        if entry.task == "generate":
            spec.build(**entry.config)  # the recommended settings satisfy the model's frame and size rules
    assert resolve("wan").config["frames"] == 81 and resolve("ltx").config["width"] == 704


def test_local_folder_entry_fetch_list_and_verify(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "vae").mkdir(parents=True)
    (folder / "vae" / "config.json").write_text('{"_class_name": "AutoencoderKLWan"}')
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 100)
    from vidgen.registry.snapshots import tree_sha256

    _write_overlay({"wan-vae.local": _dir_entry("wan-vae", "reconstruct", folder, {}, subfolder="vae")})
    result = runner.invoke(app, ["models", "fetch", "wan-vae.local"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == folder / "vae"
    (row,) = [json.loads(line) for line in runner.invoke(app, ["models", "list", "--json"]).stdout.splitlines()
              if json.loads(line)["name"] == "wan-vae.local"]
    assert row["cached"] is True and row["size"] == 100 + len('{"_class_name": "AutoencoderKLWan"}')
    report = json.loads(runner.invoke(app, ["models", "verify", "wan-vae.local", "--json"]).stdout)
    digest = tree_sha256(folder)
    assert report["status"] == "ok" and report["actual"] == digest and digest in report["note"]

    _write_overlay({"wan-vae.local": _dir_entry("wan-vae", "reconstruct", folder, {}, subfolder="vae",
                                                sha256=digest)})
    assert verify_cached(resolve("wan-vae.local")).status == "ok"
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\1" * 100)
    assert verify_cached(resolve("wan-vae.local")).status == "mismatch"
    with pytest.raises(WeightsIntegrityError, match="tree sha256"):
        ensure_weights(resolve("wan-vae.local"))
    _write_overlay({"wan-vae.local": _dir_entry("wan-vae", "reconstruct", tmp_path / "gone", {})})
    result = runner.invoke(app, ["models", "verify", "wan-vae.local", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "missing"


def _git_blob_sha1(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_hub_snapshot_is_used_offline_and_verified_against_its_blob_hashes() -> None:
    """A Hub cache laid out as huggingface_hub writes it: snapshots/<commit>/... -> blobs/<etag>."""
    import hashlib

    commit = "c" * 40
    repo_cache = paths.hf_cache_dir() / "models--org--tiny"
    files = {"vae/config.json": (b'{"a": 1}', False), "vae/diffusion_pytorch_model.safetensors": (b"\7" * 64, True)}
    for name, (data, lfs) in files.items():
        etag = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
        blob = repo_cache / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_cache / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    entry = {"task": "reconstruct", "arch": "wan-vae", "format": "diffusers", "license": "MIT",
             "description": "d",
             "sources": [{"kind": "hf", "repo": "org/tiny", "revision": commit, "subfolder": "vae"}]}
    _write_overlay({"wan-vae.hub": entry})
    assert ensure_weights(resolve("wan-vae.hub")) == repo_cache / "snapshots" / commit / "vae"  # VIDGEN_OFFLINE=1
    result = verify_cached(resolve("wan-vae.hub"))
    assert result.status == "ok" and result.actual == commit and "2 files match" in result.note
    blob = repo_cache / "blobs" / hashlib.sha256(b"\7" * 64).hexdigest()
    blob.write_bytes(b"\7" * 63 + b"\0")
    result = verify_cached(resolve("wan-vae.hub"))
    assert result.status == "mismatch" and result.path and result.path.name == "diffusion_pytorch_model.safetensors"
    assert runner.invoke(app, ["models", "verify"]).exit_code == 1


# --- tiny random models ----------------------------------------------------------------------------


def _tiny_vae(arch: str):
    import diffusers

    torch.manual_seed(0)
    if arch == "cosmos-vae":
        return diffusers.AutoencoderKLCosmos(
            latent_channels=4, encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
            attention_resolutions=(8,), resolution=64, num_layers=2, patch_size=4, patch_type="haar",
            spatial_compression_ratio=4, temporal_compression_ratio=4)
    if arch == "cogvideox-vae":
        return diffusers.AutoencoderKLCogVideoX(
            down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
            temporal_compression_ratio=4)
    if arch == "ltx-video-vae":  # the 0.9.1 layout: timestep-conditioned decoder that injects noise
        return diffusers.AutoencoderKLLTXVideo(
            latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(16, 32, 64),
            layers_per_block=(1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(True, True, True, False), upsample_residual=(True, True, True),
            upsample_factor=(2, 2, 2), timestep_conditioning=True, patch_size=1, patch_size_t=1)
    return diffusers.AutoencoderKLWan(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                      temperal_downsample=[False, True, True])


# arch -> (spatial multiple, temporal multiple, chunk, latent frames per chunk, default overlap)
VAES = {
    "cosmos-vae": (4, 4, 9, 3, 4),  # 9 // 4 rounded up to the multiple 4: chunks at 0 and 5
    "cogvideox-vae": (8, 8, 9, 3, 0),  # decodes pairs of latents, so 1 + 8k frames; no 8-frame overlap fits 9
    "ltx-video-vae": (8, 8, 9, 2, 0),
    "wan-vae": (8, 4, 5, 2, 0),
}


@pytest.fixture(scope="module")
def vae_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("diffusers")
    root = tmp_path_factory.mktemp("vaes")
    for arch in VAES:
        _tiny_vae(arch).save_pretrained(root / arch)
    return {arch: root / arch for arch in VAES}


@pytest.mark.parametrize("arch", list(VAES))
def test_vae_reconstructs_a_clip_exactly_as_diffusers_does(arch: str, vae_folders: dict[str, Path],
                                                           tmp_path: Path) -> None:
    from vidgen.tasks.reconstruct.pipeline import reconstruct_video
    from vidgen.tasks.reconstruct.reconstructor import load_reconstructor
    from vidgen.video.reader import probe, read_rgb_frames

    spatial, temporal, chunk, latent_frames, overlap = VAES[arch]
    name = f"{arch}.tiny"
    _write_overlay({name: _dir_entry(arch, "reconstruct", vae_folders[arch], {"chunk_frames": chunk})})
    count = chunk + 2  # a full chunk, then the rest padded to 1 + k*m frames (the first one is coded alone)
    clip = write_clip(tmp_path / "clip.mp4", moving_frames(count, width=36, height=28), rate=Fraction(30000, 1001))
    out = tmp_path / "out.mp4"
    result = reconstruct_video(clip, out, model=name, device="cpu")
    info = probe(out)
    assert (info.width, info.height, info.frame_rate) == (36, 28, Fraction(30000, 1001))
    assert len(list(read_rgb_frames(out))) == result.frames == count
    padded = [-(-28 // spatial) * spatial, -(-36 // spatial) * spatial]
    assert result.latent_shape[:3] == [2 * latent_frames, padded[0] // spatial, padded[1] // spatial]
    assert (result.chunk, result.overlap) == (chunk, overlap)

    # The wrapper is the diffusers VAE: same latents and frames as calling it directly on [-1, 1] video.
    rec = load_reconstructor(name, "cpu")
    frames = moving_frames(chunk, width=36, height=28)
    latent = rec.encode(frames)
    decoded = rec.decode(latent, chunk, 28, 36)
    vae = type(_tiny_vae(arch)).from_pretrained(vae_folders[arch])
    video = torch.from_numpy(np.stack(frames)).float().div(255).permute(0, 3, 1, 2) * 2 - 1  # (T, 3, H, W)
    video = torch.nn.functional.pad(video, (0, padded[1] - 36, 0, padded[0] - 28), mode="replicate")
    video = video.permute(1, 0, 2, 3)[None]  # diffusers: (B, C, T, H, W)
    with torch.no_grad():
        z = vae.encode(video).latent_dist.mode()
        kwargs = {"temb": torch.zeros(1)} if vae.config.get("timestep_conditioning") else {}
        torch.manual_seed(0)
        direct = vae.decode(z, **kwargs).sample
    assert torch.allclose(latent, z[0].permute(1, 0, 2, 3), atol=1e-5)
    expected = ((direct[0] + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0)[:, :28, :36].numpy()
    assert np.abs(decoded - expected).max() < 1e-5, "LTX's injected noise is drawn from the seed, so it matches too"


# --- text to video ---------------------------------------------------------------------------------

GEN_CONFIG = {"width": 32, "height": 16, "frames": 5, "fps": 16, "steps": 2, "guidance": 5.0,
              "negative_prompt": "blurry", "max_sequence_length": 8}


def _tiny_wan(with_text_encoder: bool):
    import diffusers

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                     temperal_downsample=[False, True, True])
    transformer = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32)
    tokenizer = text_encoder = None
    if with_text_encoder:  # a word-level tokenizer and a 1-layer UMT5, built here: no download
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

        words = ["<pad>", "</s>", "<unk>", "a", "red", "fox", "runs", "in", "snow", "blurry"]
        core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                            unk_token="<unk>")
        text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(words), d_model=32, d_kv=8, d_ff=32, num_layers=1,
                                                   num_heads=4, relative_attention_num_buckets=8))
    return diffusers.WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae,
                                 scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0))


def _tiny_ltx():
    import diffusers

    torch.manual_seed(0)
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32)
    vae = diffusers.AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, False, False), decoder_spatio_temporal_scaling=(True, True, False, False),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        patch_size=1, patch_size_t=1)
    return diffusers.LTXPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=None,
                                 tokenizer=None, transformer=transformer)


def _tiny_cogvideox():
    import diffusers

    torch.manual_seed(0)
    transformer = diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16)
    vae = _tiny_vae("cogvideox-vae")
    return diffusers.CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer,
                                       scheduler=diffusers.DDIMScheduler())


@pytest.fixture(scope="module")
def pipeline_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("pipelines")
    builders = {"wan-t2v": lambda: _tiny_wan(True), "wan-embeds": lambda: _tiny_wan(False), "ltx-video": _tiny_ltx,
                "cogvideox": _tiny_cogvideox}
    for name, build in builders.items():
        build().save_pretrained(root / name)
    return {name: root / name for name in builders}


def test_wan_generates_the_requested_frames_deterministically(pipeline_folders: dict[str, Path]) -> None:
    from vidgen.tasks.generate.diffusers import generate_frames

    _write_overlay({"wan-t2v.tiny": _dir_entry("wan-t2v", "generate", pipeline_folders["wan-t2v"], GEN_CONFIG)})
    steps: list[tuple[int, int]] = []
    frames, fps = generate_frames("wan-t2v.tiny", "a red fox runs in snow", seed=3, device="cpu",
                                  progress=lambda done, total: steps.append((done, total)))
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (5, 16, 32, 3) and fps == Fraction(16)
    assert steps == [(1, 2), (2, 2)]
    again, _ = generate_frames("wan-t2v.tiny", "a red fox runs in snow", seed=3, device="cpu")
    assert torch.equal(frames, again), "the same seed gives the same frames"
    other, _ = generate_frames("wan-t2v.tiny", "a red fox runs in snow", seed=4, device="cpu")
    assert not torch.equal(frames, other)
    wider, fps = generate_frames("wan-t2v.tiny", "a fox", frames=9, size=(48, 32), fps=8, seed=3, device="cpu",
                                 vae_tiling=True)
    assert tuple(wider.shape) == (9, 32, 48, 3) and fps == Fraction(8)


@pytest.mark.parametrize("arch", ["wan-t2v", "ltx-video", "cogvideox"])
def test_prompt_embeds_skip_the_text_encoder(arch: str, pipeline_folders: dict[str, Path]) -> None:
    from vidgen.tasks.generate.diffusers import generate_frames

    folder = pipeline_folders["wan-embeds" if arch == "wan-t2v" else arch]  # saved without text encoder
    size = {"wan-t2v": (32, 16), "ltx-video": (32, 32), "cogvideox": (16, 16)}[arch]
    tokens = 16 if arch == "cogvideox" else 8  # CogVideoX: exactly its max_text_seq_length
    config = {**GEN_CONFIG, "width": size[0], "height": size[1], "frames": 9, "max_sequence_length": tokens}
    _write_overlay({f"{arch}.tiny": _dir_entry(arch, "generate", folder, config)})
    embeds = torch.randn(1, tokens, 32, generator=torch.Generator().manual_seed(0))
    frames, _ = generate_frames(f"{arch}.tiny", "", seed=0, device="cpu", prompt_embeds=embeds)
    assert tuple(frames.shape) == (9, size[1], size[0], 3)
    again, _ = generate_frames(f"{arch}.tiny", "", seed=0, device="cpu", prompt_embeds=embeds)
    assert torch.equal(frames, again)


def test_settings_are_checked_before_anything_loads() -> None:
    from vidgen.tasks.generate.diffusers import generate_frames

    with pytest.raises(UsageError) as caught:
        generate_frames("wan", "a fox", frames=80, device="cpu")
    assert "1 + 4k frames" in caught.value.message and "--frames 81" in (caught.value.hint or "")
    with pytest.raises(UsageError, match="multiple of 32"):
        generate_frames("ltx", "a fox", size=(720, 480), device="cpu")
    with pytest.raises(UsageError, match="cpu-offload"):
        generate_frames("wan", "a fox", device="cpu", cpu_offload=True)
    with pytest.raises(UsageError, match="not a diffusers text-to-video model"):
        generate_frames("rife", "a fox", device="cpu")
    assert not paths.downloads_dir().exists(), "nothing was fetched"


def test_no_cuda_refuses_with_a_cpu_estimate_unless_cpu_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.tasks.generate.diffusers import generate_frames

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as caught:
        generate_frames("wan", "a fox")
    message = caught.value.message
    assert "needs a CUDA GPU" in message and "Wan 2.1" in message
    assert re.search(r"roughly \d+ (days|hours) for 50 steps at 832x480, 81 frames", message), message
    assert "--device cpu" in (caught.value.hint or "")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        generate_frames("wan", "a fox", device="cuda")
    assert not paths.downloads_dir().exists(), "refused before fetching 29 GB"
    # an explicit --device cpu goes on to fetch the weights: offline here, so that is the error
    from vidgen.errors import WeightsUnavailableError

    pytest.importorskip("diffusers")
    with pytest.raises(WeightsUnavailableError, match="VIDGEN_OFFLINE"):
        generate_frames("wan", "a fox", device="cpu")


def test_load_model_builds_a_diffusers_entry_and_missing_folders_say_so(vae_folders: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    from vidgen.models.diffusers.vae import DiffusersVideoVAE

    _write_overlay({"wan-vae.tiny": _dir_entry("wan-vae", "reconstruct", vae_folders["wan-vae"], {"chunk_frames": 9})})
    entry, model = load_model("wan-vae.tiny")
    assert isinstance(model, DiffusersVideoVAE) and (model.capabilities.spatial_multiple, model.capabilities.temporal_multiple) == (8, 4)
    assert not model.training, "loaded for inference"
    _write_overlay({"wan-vae.tiny": _dir_entry("wan-vae", "reconstruct", tmp_path, {})})
    from vidgen.errors import WeightsUnavailableError

    with pytest.raises(WeightsUnavailableError, match="no config.json or model_index.json"):
        load_model("wan-vae.tiny")


def test_without_diffusers_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vidgen.errors import VidgenError

    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if `vidgen[diffusers]` were not installed
    with pytest.raises(VidgenError) as caught:
        load_model("wan-vae")
    assert "diffusers" in caught.value.message and "vidgen[diffusers]" in (caught.value.hint or "")
    assert not paths.downloads_dir().exists(), "said so before downloading anything"
