"""Quality metrics used by `vidgen eval`: PSNR/SSIM matching scikit-image, error heat maps, montages."""

from vidgen.metrics.quality import FrameScores, error_heatmap, mean_psnr, montage, psnr, ssim

__all__ = ["FrameScores", "error_heatmap", "mean_psnr", "montage", "psnr", "ssim"]
