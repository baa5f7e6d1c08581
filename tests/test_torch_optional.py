"""torch stays optional: the package imports without it, and watch says in one line how to get it."""

import subprocess
import sys

import pytest

import tinygrad_act
from tinygrad_act.common.errors import UsageError


def test_importing_the_package_never_imports_torch():
    code = "import sys, tinygrad_act, tinygrad_act.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_watch_without_torch_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError, as where it is missing
    with pytest.raises(UsageError, match=r"pip install 'tinygrad_act\[torch\]'") as error:
        tinygrad_act.watch(object(), out=str(tmp_path / "run"))
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()
