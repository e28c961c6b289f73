"""Where and how models run: devices, precision, memory estimates and tiling."""
