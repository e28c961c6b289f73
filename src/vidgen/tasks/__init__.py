"""One package per task: what a task owns (its pipeline, engines or model wrapper, evaluation and training
task), built on the shared layers below (video, runtime, registry, metrics, train, models)."""
