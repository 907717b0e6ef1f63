"""Semantic segmentation: image+mask data, joint augmentation, losses, metrics and models
(U-Net, FCN-8s/16s/32s). The trainer and the CLI are still to come."""
