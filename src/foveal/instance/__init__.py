"""Instance segmentation: Mask R-CNN and U-Net + watershed (issue #14)."""
