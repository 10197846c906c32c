"""Several devices, with JAX's own sharding: rows of the crossproduct build and lanes of a
batch (bootstrap replicates) are split over a one-axis mesh of all local devices.

Nothing changes with one device. With several (GPUs, or CPU devices made by
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX starts):

* :func:`sharded_products` sums per-level products of row-sharded columns with a
  ``shard_map`` whose per-device segment sums are added by ``psum``. The crossproduct build
  uses it for big data (at least :data:`SHARD_MIN_ROWS` rows);
* :func:`shard_lanes` places a batch's lane numbers across devices; the jitted batch
  program then runs each device's lanes there (GSPMD partitions the vmapped fit).

Results equal one device's up to the order of summation.

Example:
    >>> import numpy as np
    >>> idx, L = np.array([0, 1, 0]), np.arange(6.0).reshape(3, 2)
    >>> sharded_products(idx, L, L[:, :1], 2)[:, :, 0].tolist()
    [[16.0, 20.0], [4.0, 6.0]]
"""

from __future__ import annotations

from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .precision import x64

__all__ = ["SHARD_MIN_ROWS", "device_count", "shard_lanes", "sharded_products"]

#: Rows from which the crossproduct build is sharded over several devices.
SHARD_MIN_ROWS = 1_000_000


def device_count() -> int:
    """Number of local devices JAX sees."""
    return jax.local_device_count()


@cache
def _mesh(k: int) -> Mesh:
    return Mesh(np.array(jax.local_devices()[:k]), ("shard",))


@partial(jax.jit, static_argnames=("size", "k"))
def _products(idx, L, R, size: int, k: int):
    def local(i, l, r):
        prod = l[:, :, None] * r[:, None, :]
        return jax.lax.psum(jax.ops.segment_sum(prod, i, num_segments=size), "shard")

    return jax.shard_map(local, mesh=_mesh(k), in_specs=(P("shard"), P("shard"), P("shard")),
                         out_specs=P())(idx, L, R)


def sharded_products(idx: np.ndarray, L: np.ndarray, R: np.ndarray, size: int) -> np.ndarray:
    """``out[g, a, b]`` = sum over rows i with ``idx[i] == g`` of ``L[i, a] * R[i, b]``, the
    rows split over all local devices (float64)."""
    k = device_count()
    n = idx.shape[0]
    m = -(-n // k) * k
    with x64():
        pad = m - n
        idx_p = np.concatenate([np.asarray(idx, np.int32), np.zeros(pad, np.int32)])
        L_p = np.concatenate([np.asarray(L, np.float64), np.zeros((pad, L.shape[1]))])
        R_p = np.concatenate([np.asarray(R, np.float64), np.zeros((pad, R.shape[1]))])
        rows = NamedSharding(_mesh(k), P("shard"))
        args = [jax.device_put(a, rows) for a in (idx_p, L_p, R_p)]
        return np.asarray(_products(*args, size=int(size), k=k))


def use_sharded_products(n: int) -> bool:
    """Whether the crossproduct build of ``n`` rows is sharded (several devices, big n)."""
    return n >= SHARD_MIN_ROWS and device_count() > 1


def shard_lanes(idx: np.ndarray):
    """Lane numbers of a batch chunk placed across the local devices (as is for one
    device, or when the chunk does not divide evenly)."""
    k = device_count()
    if k < 2 or len(idx) % k:
        return jnp.asarray(idx)
    return jax.device_put(np.asarray(idx), NamedSharding(_mesh(k), P("shard")))
