"""reslab: measure what residual connections solve in deep networks, and why they work."""

from .errors import ConfigError, DataError, ReslabError, UnknownModelError
from .models import create_model, list_models, load_weights

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ReslabError",
    "UnknownModelError",
    "create_model",
    "list_models",
    "load_weights",
    "__version__",
]
