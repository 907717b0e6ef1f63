"""Domain adaptation (``foveal adapt``): train a classifier on labelled source images so that it
works on a target domain with no (or few) labels.

Methods: DANN, gradient reversal + a domain classifier (Ganin & Lempitsky, ICML 2015; Ganin et
al., JMLR 2016); CORAL (Sun & Saenko 2016); MMD (Long et al. 2015); and the source-only
baseline, trained in the same run for comparison; AdaBN (Li et al. 2017) re-estimates the saved
classifier's batch-norm statistics on target images at the end. Modules: ``layers``
(GradientReversal, the reversal-weight and learning-rate schedules), ``losses`` (CORAL, MMD),
``model`` (AdaptModel), ``statistics`` (AdaBN), ``data`` (the two domains), ``task`` (the engine
plugin), ``report``, ``cli``.

Example:
    >>> from foveal.tasks import run_train
    >>> run_train("adapt", source="mnist/", target="mnist-m/", channels=3)  # doctest: +SKIP
"""
