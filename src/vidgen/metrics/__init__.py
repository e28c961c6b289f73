"""Quality metrics used by `vidgen eval`: PSNR/SSIM matching scikit-image, error heat maps, montages, and the
scores every evaluator accumulates."""

from vidgen.metrics.quality import error_heatmap, mean_psnr, montage, psnr, ssim
from vidgen.metrics.scores import FrameScores, clip_psnr, compare_videos, mean_finite

__all__ = ["FrameScores", "clip_psnr", "compare_videos", "error_heatmap", "mean_finite", "mean_psnr", "montage",
           "psnr", "ssim"]
