"""The engine's one extension point: methods added to every Value and Tensor from outside the engine.

nn's activation registry installs each activation as a method (``Value(0.3).gelu()``, ``Tensor(x).softplus(beta=2)``)
through ``add_method``; the engine never imports the registry, and nothing else sets attributes on its classes.
"""

from __future__ import annotations

from .graph import Node

_added: set[str] = set()  # the names add_method installed


def add_method(name: str, method) -> bool:
    """Make ``method(node, **params)`` callable as ``node.name(**params)`` on every Value and Tensor.

    The one way to extend the engine's classes from outside: nn's activation registry calls it for each
    activation (``Value(0.3).gelu()``). Names the engine defines itself, or that start with "_", are left
    alone (False). A real method, not a ``__getattr__``: that would slow every attribute access of every node
    (Value's MLP step by a quarter on Python 3.11, which then cannot specialize them).
    """
    if name.startswith("_") or name in _added or any(hasattr(c, name) for c in (Node, *Node.__subclasses__())):
        return False
    method.__name__ = method.__qualname__ = name
    setattr(Node, name, method)
    _added.add(name)
    return True


def remove_method(name: str) -> None:
    """Remove a method ``add_method`` installed (nothing else)."""
    if name in _added:
        delattr(Node, name)
        _added.discard(name)
