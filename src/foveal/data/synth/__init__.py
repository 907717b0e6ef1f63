"""Generated datasets (``foveal datasets synth ...``): deterministic for a seed, written in
layouts the existing readers read.

* :mod:`~foveal.data.synth.mnist_m`: MNIST-M-style digits, blended with patches of photos
  (Ganin et al. 2016), the classic target domain of domain adaptation.

* :mod:`~foveal.data.synth.composite`: object cut-outs (from COCO masks or image + mask
  folders) pasted onto photos, with COCO boxes and masks (Dwibedi et al. 2017).
* :mod:`~foveal.data.synth.grabcut`: masks of a box dataset's objects by box-initialised GrabCut
  (Rother et al. 2004), the mask folders ``composite`` reads.
* :mod:`~foveal.data.synth.render`: 3D meshes rendered headless (moderngl on EGL) at random
  poses, distances, lights and backgrounds, with COCO boxes, masks and poses.
"""
