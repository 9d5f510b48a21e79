"""A small Transformer encoder whose every sublayer is a Block (Vaswani2017; Xiong2020).

Each encoder layer contributes two blocks, self-attention and feed-forward, so lesion and
path analyses treat sublayers as the residual units they are. Variants:
- "post-ln" (Vaswani2017): LN(x + F(x));
- "pre-ln" (Xiong2020): x + F(LN(x)), with a final LN before the classifier;
- "no-residual": LN(F(x)), the post-LN net with its skip connections removed;
- "rezero" (Bachlechner2020): x + alpha·F(x), alpha = 0 at init, no LayerNorm.
The head classifies every position (token-level tasks such as reversal or sorting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .block import Block
from .net import BlockNet
from .parts import LearnedScalar

VARIANTS = ("post-ln", "pre-ln", "no-residual", "rezero")


class TokenEmbedding(nn.Module):
    """Token embedding plus a learned position embedding."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        return self.tokens(x) + self.positions(pos)


class SelfAttention(nn.Module):
    """Multi-head self-attention (fused scaled dot-product attention)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        if d_model % heads:
            raise ConfigError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.dropout, self.causal = heads, dropout, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


def feed_forward(d_model: int, d_ff: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))


def transformer(
    depth: int = 6,
    *,
    variant: str = "pre-ln",
    d_model: int = 64,
    heads: int = 4,
    d_ff: int = 256,
    vocab_size: int = 16,
    seq_len: int = 16,
    num_classes: int | None = None,
    dropout: float = 0.0,
    causal: bool = False,
) -> BlockNet:
    """A Transformer encoder of ``depth`` layers (2·depth blocks) for token sequences."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown transformer variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if depth < 1:
        raise ConfigError(f"transformer depth must be >= 1, got {depth}")
    arch = dict(
        builder="transformer",
        depth=depth,
        variant=variant,
        d_model=d_model,
        heads=heads,
        d_ff=d_ff,
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_classes=num_classes,
        dropout=dropout,
        causal=causal,
    )
    blocks = []
    for _ in range(depth):
        for sub in (SelfAttention(d_model, heads, dropout, causal), feed_forward(d_model, d_ff, dropout)):
            if variant == "pre-ln":
                blocks.append(Block(nn.Sequential(nn.LayerNorm(d_model), sub), nn.Identity()))
            elif variant == "post-ln":
                blocks.append(Block(sub, nn.Identity(), post=nn.LayerNorm(d_model)))
            elif variant == "no-residual":
                blocks.append(Block(sub, None, post=nn.LayerNorm(d_model)))
            else:
                blocks.append(Block(nn.Sequential(sub, LearnedScalar(0.0)), nn.Identity()))
    final = [nn.LayerNorm(d_model)] if variant == "pre-ln" else []
    head = nn.Sequential(*final, nn.Linear(d_model, num_classes or vocab_size))
    net = BlockNet(TokenEmbedding(vocab_size, d_model, seq_len), blocks, head, arch, (seq_len,), vocab_size)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net
