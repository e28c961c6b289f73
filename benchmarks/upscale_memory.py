"""Calibrate the upscale memory estimate: peak RSS of one network call per input pixel and frame, on the CPU.

    python -m benchmarks.upscale_memory                 # the architectures of the registry's upscale models

For each architecture (random weights, the shipped configs) a fresh process runs one call of vidgen's engine
on frames of two sizes, and reports the growth of its peak RSS (ru_maxrss) over the process after loading,
per input pixel and frame. `vidgen.tasks.upscale.engine.NETWORK_BYTES_PER_PIXEL` should stay above these.
"""

from __future__ import annotations

import json
import subprocess
import sys

ARCHS = {
    "RRDBNet": ("rrdbnet", {"num_block": 23}),
    "SRVGGNetCompact": ("srvgg", {}),
    "VideoSR": ("vsr", {}),
}
SIZES = ((90, 160), (180, 320))

_CHILD = """
import json, resource, sys
import numpy as np, torch
from vidgen.registry.archs import get_arch
from vidgen.tasks.upscale.engine import NetworkEngine
arch, config, height, width = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = get_arch(arch).build(**config).eval()
engine = NetworkEngine(model, model.capabilities, "cpu", batch_size=1)
frames = engine.chunk + 2 * engine.context if engine.temporal else 1
x = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
engine.upscale(x, height * engine.scale, width * engine.scale, slice(engine.context, frames - engine.context))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"bytes": after - before, "pixels": height * width, "frames": frames}))
"""


def main() -> None:
    for name, (arch, config) in ARCHS.items():
        for height, width in SIZES:
            done = subprocess.run([sys.executable, "-c", _CHILD, arch, json.dumps(config), str(height), str(width)],
                                  capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            per_pixel = row["bytes"] / (row["pixels"] * row["frames"])
            print(f"{name:16s} {width}x{height} x {row['frames']} frame(s): peak +{row['bytes'] / 2**20:.0f} MB, "
                  f"{per_pixel:,.0f} bytes per input pixel and frame", flush=True)


if __name__ == "__main__":
    main()
