"""Generated datasets (``foveal datasets synth ...``): deterministic for a seed, written in
layouts the existing readers read.

* :mod:`~foveal.data.synth.mnist_m`: MNIST-M-style digits, blended with patches of photos
  (Ganin et al. 2016), the classic target domain of domain adaptation.

Composited cut-outs (COCO boxes + masks) and rendered meshes are not written yet.
"""
