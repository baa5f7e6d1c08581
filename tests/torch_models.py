"""The PyTorch modules of the watch tests (test_torch_watch.py, test_torch_watch_recurrent.py), imported by the
tests that build them, never at collection (conftest.py: USES_TORCH)."""

import torch


class Calls(torch.nn.Module):
    """Linear layers with an activation function called in forward (no activation module in the model)."""

    def __init__(self, linears, function):
        super().__init__()
        self.linears, self.function = torch.nn.ModuleList(linears), function

    def forward(self, x):
        for linear in self.linears[:-1]:
            x = self.function(linear(x))
        return self.linears[-1](x)


class Readout(torch.nn.Module):
    """A recurrent module (batch first) and a Linear reading its last hidden state: RecurrentNet in PyTorch."""

    def __init__(self, recurrent, head):
        super().__init__()
        self.recurrent, self.head = recurrent, head

    def forward(self, x):
        outputs, _ = self.recurrent(x)
        return self.head(outputs[:, -1])


class LstmMlp(torch.nn.Module):
    """An LSTM (batch first) read by a two-layer tanh MLP."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 5, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Sequential(torch.nn.Linear(5, 4, dtype=torch.float64), torch.nn.Tanh(),
                                        torch.nn.Linear(4, 2, dtype=torch.float64))  # fmt: skip

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])
