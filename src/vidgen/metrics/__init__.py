"""Quality metrics used by `vidgen eval`: PSNR/SSIM matching scikit-image, error heat maps, montages."""

from vidgen.metrics.quality import error_heatmap, mean_psnr, montage, psnr, ssim

__all__ = ["error_heatmap", "mean_psnr", "montage", "psnr", "ssim"]
