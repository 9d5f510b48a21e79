"""Recurrent nets (vanilla tanh RNN, GRU, LSTM) that expose every step's hidden state.

The gates of a GRU (h_t = (1 − z)·h_{t−1} + z·h̃) and the cell of an LSTM
(c_t = f·c_{t−1} + i·g) are skip connections through time: this module lets the
gradient-through-time probes see each step's state. These nets are not block-protocol
nets (their "depth" is time, shared weights), so block analyses do not apply to them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

CELLS = {"tanh": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
# the whole sequence in one ATen call, with the cell's own weights and gate order: on a CPU the LSTM
# then runs oneDNN's fused kernel (the adding problem's LSTM at T = 100 trained 2.6x faster than
# through the cell step by step; the GRU and tanh RNN gain little)
SEQUENCE = {"tanh": torch.rnn_tanh, "gru": torch.gru, "lstm": torch.lstm}


class RecurrentNet(nn.Module):
    """One recurrent cell unrolled over time, a linear readout of the last hidden state."""

    def __init__(
        self,
        cell: str = "tanh",
        input_size: int = 2,
        hidden_size: int = 128,
        num_classes: int = 1,
        seq_len: int = 50,
        forget_bias: float = 1.0,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        self.arch = dict(
            cell=cell,
            input_size=input_size,
            hidden_size=hidden_size,
            num_classes=num_classes,
            seq_len=seq_len,
            forget_bias=forget_bias,
        )
        self.cell_type = cell
        self.cell = CELLS[cell](input_size, hidden_size)
        if cell == "lstm":
            # an open forget gate at the start (Gers et al. 2000; Jozefowicz et al. 2015): the cell
            # carries its state, and its gradient, across time from the first step
            with torch.no_grad():
                self.cell.bias_ih[hidden_size : 2 * hidden_size].fill_(forget_bias)
                self.cell.bias_hh[hidden_size : 2 * hidden_size].zero_()
        self.head = nn.Linear(hidden_size, num_classes)
        self.input_shape = (seq_len, input_size)

    def init_state(self, batch_size: int, device: torch.device | None = None):
        h = torch.zeros(batch_size, self.cell.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if self.cell_type == "lstm" else h

    def step(self, x_t: torch.Tensor, state):
        """One time step: the next state from input x_t (batch, input_size) and the state."""
        return self.cell(x_t, state)

    @staticmethod
    def hidden(state) -> torch.Tensor:
        """The hidden vector h of a state (an LSTM state is the pair (h, c))."""
        return state[0] if isinstance(state, tuple) else state

    def states(self, x: torch.Tensor) -> list:
        """Every step's state for x of shape (batch, time, input_size), in graph order."""
        state = self.init_state(x.shape[0], x.device)
        out = []
        for t in range(x.shape[1]):
            state = self.step(x[:, t], state)
            out.append(state)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cell
        h0 = torch.zeros(1, x.shape[0], c.hidden_size, device=x.device, dtype=x.dtype)
        state = (h0, h0) if self.cell_type == "lstm" else h0
        weights = [c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh]
        out = SEQUENCE[self.cell_type](x, state, weights, True, 1, 0.0, self.training, False, True)[0]
        return self.head(out[:, -1])

    def example_input(self, batch_size: int = 2) -> torch.Tensor:
        return torch.randn(batch_size, *self.input_shape)
