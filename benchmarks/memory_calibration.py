"""Re-measure the constants of vidgen's memory estimate (`vidgen.runtime.memory`): the peak RSS growth of one
IFNet engine call, each configuration in a fresh process, printed beside the estimate.

    python -m benchmarks.memory_calibration
"""

from __future__ import annotations

from vidgen.runtime import memory


def measure(height: int, width: int, scale: float, batch_size: int, times: int, tile: int) -> float:
    """Peak RSS growth (MB) of one IFNet engine call, in a fresh process so maxima do not mix."""
    import json
    import subprocess
    import sys

    code = f"""
import json, resource, numpy as np, torch
from vidgen.models.ifnet import IFNet
from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator
torch.manual_seed(0)
engine = MidpointNetworkInterpolator(IFNet(90).eval(), "cpu", 32, {scale}, tile={tile}, retimes=True)
small = np.zeros((1, 64, 64, 3), np.uint8)
engine.interpolate(small, small, [0.5])
frames0 = np.random.default_rng(0).integers(0, 256, ({batch_size}, {height}, {width}, 3), dtype=np.uint8)
frames1 = np.roll(frames0, 3, 2)
base = int(open("/proc/self/statm").read().split()[1]) * 4096
engine.interpolate(frames0, frames1, [(i + 1) / ({times} + 1) for i in range({times})] if {times} > 1 else [0.5])
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base) / 2**20))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(result.stdout.strip().splitlines()[-1]))


def calibrate() -> None:
    """Print measured peak growth next to the estimate for the configurations in docs/design.md."""
    configs = [(256, 448, 1.0, 1, 1, 0), (512, 896, 1.0, 1, 1, 0), (736, 1280, 1.0, 1, 1, 0),
               (1088, 1920, 1.0, 1, 1, 0), (512, 896, 0.5, 1, 1, 0), (736, 1280, 0.5, 1, 1, 0),
               (512, 896, 1.0, 4, 1, 0), (512, 896, 1.0, 1, 2, 0), (512, 896, 1.0, 1, 3, 0),
               (512, 896, 1.0, 4, 3, 0), (736, 1280, 1.0, 1, 1, 256), (736, 1280, 1.0, 1, 1, 512)]
    print("height width scale batch times tile  measured_MB  estimate_MB")
    for height, width, scale, batch_size, times, tile in configs:
        from vidgen.runtime.tiling import Tiling, tile_size_for

        multiple = max(32, int(32 / scale))
        padded = (height + -height % multiple) * (width + -width % multiple)
        window = Tiling(height + -height % multiple, width + -width % multiple,
                        tile_size_for(tile, multiple), 0).window_pixels() if tile else padded
        estimate = memory.network_peak_bytes(padded, window, scale, batch_size, 1, times) / 2**20
        measured = measure(height, width, scale, batch_size, times, tile)
        print(f"{height:6d} {width:5d} {scale:5.2f} {batch_size:5d} {times:5d} {tile:4d}  {measured:11.0f}  {estimate:11.0f}")


if __name__ == "__main__":
    calibrate()
