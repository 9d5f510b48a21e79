"""``BlockNet``: a net that is ``stem -> blocks -> head`` and follows the block protocol.

The protocol is what every probe relies on, so that it works on any model, including a
user's own: ``net.blocks`` (an ``nn.ModuleList`` of ``Block``s, in order), ``net.stem``,
``net.head`` and ``net.forward_blocks(x, start, stop)``, with
``net.head(net.forward_blocks(net.stem(x), 0, len(net.blocks))) == net(x)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .block import Block


class BlockNet(nn.Module):
    """Base class of every block-protocol net in the zoo.

    Builders pass the three parts and describe the input: ``input_shape`` (one sample's
    shape) and, for token models, ``vocab_size`` (inputs are then integer token ids).
    ``arch`` records the builder arguments, so results can say exactly what was built.
    """

    def __init__(
        self,
        stem: nn.Module,
        blocks: list[Block],
        head: nn.Module,
        arch: dict[str, Any],
        input_shape: tuple[int, ...],
        vocab_size: int | None = None,
    ):
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.arch = dict(arch)
        self.input_shape = tuple(input_shape)
        self.vocab_size = vocab_size

    def forward_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run blocks[start:stop] on x (the output of the stem or of block start-1)."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_blocks(self.stem(x)))

    def example_input(self, batch_size: int = 2) -> torch.Tensor:
        """A random batch this net accepts (token ids for token models)."""
        shape = (batch_size, *self.input_shape)
        if self.vocab_size is not None:
            return torch.randint(self.vocab_size, shape)
        return torch.randn(shape)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)


def follows_block_protocol(model: nn.Module) -> bool:
    """True if ``model`` exposes stem, blocks (of ``Block``) and head, plus forward_blocks."""
    blocks = getattr(model, "blocks", None)
    return (
        isinstance(blocks, nn.ModuleList)
        and all(isinstance(b, Block) for b in blocks)
        and isinstance(getattr(model, "stem", None), nn.Module)
        and isinstance(getattr(model, "head", None), nn.Module)
        and callable(getattr(model, "forward_blocks", None))
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
