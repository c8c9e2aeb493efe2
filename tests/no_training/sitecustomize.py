"""Make the training-only packages unimportable in a Python started with this folder on
PYTHONPATH (Python imports ``sitecustomize`` at start-up): a serve-only install, simulated.

Used by tests/service/test_serve_without_torch.py for the app, a real uvicorn server
and the API tests run in subprocesses.
"""

import importlib.abc
import sys

BLOCKED = frozenset({"torch", "deepwave", "onnx", "onnxscript", "torchvision"})


class _BlockTrainingPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (serve-only test)", name=name)
        return None


sys.meta_path.insert(0, _BlockTrainingPackages())
