"""Text-to-video generation: the captioned moving-digits data, the model and its pipeline, and the judge."""
