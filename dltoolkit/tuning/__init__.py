"""Hyperparameter search: the search space (:mod:`.space`, a YAML file per recipe), the
KerasTuner HyperModel that builds and fits a trial through the run's task
(:mod:`.hypermodel`), the search itself with KerasTuner's stock tuners (:mod:`.search`),
and a whole ``dltk tune`` job (:mod:`.jobs`: chief/worker roles, chunks of trials,
retraining the best).

Only the search space is imported here: the other modules import Keras, so import them
once the backend is chosen.
"""

from dltoolkit.tuning.space import SearchSpace, check_tuner, flatten, load_space, tuning_dir

__all__ = ["SearchSpace", "check_tuner", "flatten", "load_space", "tuning_dir"]
