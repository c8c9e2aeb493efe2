"""The embedding actor of the Ray build (:mod:`seislens.index.ray_build`), in a module of
its own so that an actor process imports little: numpy, the bundle reader, the branch
registry, ONNX Runtime and the one branch's item code it is given (not the builder,
which imports every branch's: the event branch alone pulls in scipy.signal and pandas,
about 3 CPU-s of imports that a velocity build's actors would pay each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from seislens.index.bundle import branch_section, read_manifest
from seislens.models.branches import get_branch


class PartEmbedder:
    """A Ray Data actor: one branch embedder; embeds the parts of a batch of rows.

    Args:
        bundle: the bundle directory; branch: the registry name; paths, max_per_folder,
            options: what the build discovers its sources with; threads: ONNX Runtime
            intra-op threads; gpu: prefer CUDA; items: the branch's library items (the
            build's own; None: looked up in :data:`seislens.index.builder.ITEMS`).
    """

    def __init__(
        self,
        bundle: str,
        branch: str,
        paths: list[str],
        max_per_folder: int | None,
        options: Any,
        threads: int,
        gpu: bool,
        items: Any = None,
    ) -> None:
        from seislens.models.embedders import choose_providers

        if items is None:
            from seislens.index.builder import ITEMS

            items = ITEMS[branch]
        self.branch = get_branch(branch)
        self.items = items
        self.options = options
        self.sources = self.items.discover([Path(p) for p in paths], max_per_folder, options)
        section = branch_section(Path(bundle), read_manifest(Path(bundle)), self.branch)
        self.embedder = self.branch.build_embedder(
            Path(bundle), section, choose_providers(prefer_gpu=gpu), threads
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed each row's part (``path``, ``source``, ``start``, ``stop``) to its file;
        the rows back with ``items`` (items embedded) and ``pid`` (this actor's process)."""
        done = []
        for path, i, a, b in zip(
            batch["path"], batch["source"], batch["start"], batch["stop"], strict=True
        ):
            part = self.items.embed(
                self.embedder, self.sources[int(i)], int(a), int(b), self.options
            )
            part.save(Path(str(path)))
            done.append(len(part))
        n = len(done)
        return {"path": batch["path"], "items": np.array(done), "pid": np.full(n, os.getpid())}
