"""Transfer learning: pretrained networks, freezing, model surgery, bottleneck features and
the two-phase fine-tuning recipe (see ``foveal train --weights/--freeze/--fine-tune``)."""

from foveal.transfer.bottleneck import (
    Bottleneck,
    attach_head,
    compute_features,
    feature_split,
    make_head,
    train_head_on_features,
)
from foveal.transfer.finetune import Phases, two_phase_fit
from foveal.transfer.freeze import freeze, select_layers, trainable_counts, trainable_summary, unfreeze
from foveal.transfer.pretrained import (
    PRETRAINED,
    WeightTransfer,
    build_pretrained,
    decode_predictions,
    imagenet_card,
    imagenet_class_names,
    load_weights_by_name,
    weights_cache_dir,
)
from foveal.transfer.surgery import base_layers, cut, graft_head, head_layers, pop

__all__ = [
    "PRETRAINED", "Bottleneck", "Phases", "WeightTransfer", "attach_head", "base_layers", "build_pretrained",
    "compute_features", "cut", "decode_predictions", "feature_split", "freeze", "graft_head", "head_layers",
    "imagenet_card", "imagenet_class_names", "load_weights_by_name", "make_head", "pop", "select_layers",
    "train_head_on_features", "trainable_counts", "trainable_summary", "two_phase_fit", "unfreeze",
    "weights_cache_dir",
]
