"""Networks: Hamiltonian / Leapfrog / Midpoint Blocks, the Nonlocal Block, Units, baselines, ENet."""

from nlseg.nn.baselines import BASELINES, PreResNetV2, ResNetV1
from nlseg.nn.blocks import BLOCKS, HamiltonianBlock, LeapfrogBlock, MidpointBlock
from nlseg.nn.config import ARCHITECTURES, ModelConfig, build_model
from nlseg.nn.enet import ENet
from nlseg.nn.network import HamiltonianNet, Unit
from nlseg.nn.nonlocal_block import NonlocalBlock, NonlocalConfig, PairwiseOperator
from nlseg.nn.presets import PRESETS, DatasetPreset
from nlseg.nn.regularization import weight_decay_groups, weight_smoothness_decay

__all__ = [
    "ARCHITECTURES",
    "BASELINES",
    "BLOCKS",
    "DatasetPreset",
    "ENet",
    "HamiltonianBlock",
    "HamiltonianNet",
    "LeapfrogBlock",
    "MidpointBlock",
    "ModelConfig",
    "NonlocalBlock",
    "NonlocalConfig",
    "PRESETS",
    "PairwiseOperator",
    "PreResNetV2",
    "ResNetV1",
    "Unit",
    "build_model",
    "weight_decay_groups",
    "weight_smoothness_decay",
]
