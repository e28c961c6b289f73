"""An independent judge of moving-digit clips: which digit is shown and which way it moves.

It shares nothing with any generator: a tiny CNN trained on its own handwriting (the "judge-train"
images of `digits.IMAGE_SPLITS`) and a model-free motion tracker. Frames are uint8 (T, H, W, 3) or
(T, H, W) of any size (resized to 64x64); speeds are in pixels per frame of the 64x64 frame.

- `tracker`: grey levels, per-frame centroids of the bright content, direction and speed.
- `classifier`: the digit network (10 digits and "no digit"), its inputs, its training and cached weights.
- `evaluate`: one clip's verdict, match rates against captions, `vidgen eval generate`'s report.
- `ground_truth`: the judge measured on clips rendered from images it never trained on.
"""

from vidgen.tasks.generate.judge.classifier import (
    ClassifierSettings,
    DigitClassifier,
    classifier_path,
    load_classifier,
    train_classifier,
)
from vidgen.tasks.generate.judge.evaluate import JudgeResult, evaluate_prompts, judge_clip, match_rates, score_clips
from vidgen.tasks.generate.judge.ground_truth import degrade, validate
from vidgen.tasks.generate.judge.tracker import Motion, track_motion

__all__ = ["ClassifierSettings", "DigitClassifier", "JudgeResult", "Motion", "classifier_path", "degrade",
           "evaluate_prompts", "judge_clip", "load_classifier", "match_rates", "score_clips", "track_motion",
           "train_classifier", "validate"]
