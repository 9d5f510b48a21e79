"""The model zoo: one block abstraction (``Block``), backbones, and the registry."""

from . import zoo as _zoo  # noqa: F401  (registers every named model)
from .block import MODES, Block, block_modes, set_modes
from .builder import BlockConfig
from .cnn import cifar_densenet, cifar_resnet
from .init import init_weights
from .mlp import mlp
from .net import BlockNet, count_parameters, follows_block_protocol
from .registry import create_model, get_entry, list_models, model_entries, register_model
from .rnn import RecurrentNet
from .transformer import transformer
from .weights import LoadedWeights, WeightsError, load_weights

__all__ = [
    "MODES",
    "Block",
    "BlockConfig",
    "BlockNet",
    "LoadedWeights",
    "RecurrentNet",
    "block_modes",
    "cifar_densenet",
    "cifar_resnet",
    "count_parameters",
    "create_model",
    "follows_block_protocol",
    "get_entry",
    "init_weights",
    "list_models",
    "load_weights",
    "mlp",
    "model_entries",
    "register_model",
    "set_modes",
    "transformer",
    "WeightsError",
]
