"""Super-resolution and restoration: upscale videos with Real-ESRGAN, any SR model spandrel knows, the in-house
video model `vsr`, or classical resizing; alone or chained with frame interpolation in one pass."""
