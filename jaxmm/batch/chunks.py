"""Run a batched program over many lanes in equal chunks, with an optional progress bar.

Every chunk has the same size (the last one is padded and the padding discarded), so the
program compiles once; lanes are numbered globally, so results do not depend on the chunk
size.

Example:
    >>> chunk_plan(2500, None)
    (3, 834)
    >>> chunk_plan(10, 4)
    (3, 4)
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from ..errors import ModelError

#: Default largest chunk; memory per lane also limits it (see :func:`chunk_plan`).
MAX_BATCH = 1000
#: Memory a chunk's lane-dependent intermediates may take by default (bytes).
CHUNK_MEMORY = 256 * 2**20


def chunk_plan(n: int, batch_size: int | None, bytes_per_lane: int = 0) -> tuple[int, int]:
    """Number of chunks and lanes per chunk for ``n`` lanes: at most ``batch_size`` (default
    :data:`MAX_BATCH`, fewer when each lane needs a lot of memory), chunks balanced."""
    if batch_size is None:
        cap = MAX_BATCH
        if bytes_per_lane > 0:
            cap = int(max(1, min(cap, CHUNK_MEMORY // bytes_per_lane)))
    else:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ModelError(f"batch_size must be a positive integer, got {batch_size!r}")
        cap = int(batch_size)
    nchunks = -(-n // cap)
    return nchunks, -(-n // nchunks)


def _progress_bar(progress, total: int, nchunks: int, desc: str):
    if progress is False or (progress is None and nchunks < 2):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError(
                "progress=True needs tqdm: install it with `pip install tqdm` or "
                "`pip install jaxmm[progress]`, or pass progress=False"
            ) from None
        return None
    return tqdm(total=total, desc=desc, unit="fit")


def run_chunks(run: Callable[[np.ndarray], object], n: int, batch_size: int | None, *,
               bytes_per_lane: int = 0, progress=None, desc: str = "jaxmm",
               shard: bool = False) -> object:
    """Call ``run(idx)`` for each chunk of lane numbers (idx padded with lane 0 to the chunk
    size) and concatenate the results' leaves (a pytree of arrays), padding dropped.

    ``shard``: place each chunk's lanes across all local devices (chunks then hold a
    multiple of the device count; see :mod:`jaxmm.sharding`).

    ``progress``: None shows a tqdm bar when there is more than one chunk and tqdm is
    installed; True always (an error without tqdm); False never.
    """
    nchunks, size = chunk_plan(n, batch_size, bytes_per_lane)
    from ..sharding import device_count, shard_lanes

    k = device_count() if shard else 1
    size = -(-size // k) * k
    nchunks = -(-n // size)
    bar = _progress_bar(progress, n, nchunks, desc)
    parts = []
    try:
        for c in range(nchunks):
            lanes = np.arange(c * size, min(n, (c + 1) * size))
            idx = np.concatenate([lanes, np.zeros(size - lanes.size, lanes.dtype)])
            out = jax.device_get(run(shard_lanes(idx) if k > 1 else idx))
            parts.append(jax.tree_util.tree_map(lambda a, k=lanes.size: np.asarray(a)[:k], out))
            if bar is not None:
                bar.update(lanes.size)
    finally:
        if bar is not None:
            bar.close()
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)
