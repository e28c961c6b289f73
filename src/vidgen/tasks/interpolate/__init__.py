"""Frame interpolation: raise a video's frame rate with RIFE, classical optical flow or a cross-fade."""
