"""Image classification as a task of the run engine (:class:`~foveal.classification.task.ClassifyTask`)."""
