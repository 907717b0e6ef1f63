"""CORAL and MMD, now in :mod:`foveal.ops.domain` (shared with the detectors' adaptation);
importable from here as before."""

from foveal.ops.domain import MMD_MULTIPLIERS, coral_loss, covariance, mmd_loss

__all__ = ["MMD_MULTIPLIERS", "coral_loss", "covariance", "mmd_loss"]
