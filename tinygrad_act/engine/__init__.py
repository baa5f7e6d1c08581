"""The autograd engine: one backward walk (graph) for a scalar (Value) and a tensor (Tensor) engine. numpy only."""
