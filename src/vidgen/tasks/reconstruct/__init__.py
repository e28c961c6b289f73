"""Video autoencoders and tokenizers: a video through a model's latent space and back, or to and from latents."""
