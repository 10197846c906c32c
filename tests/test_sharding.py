"""Sharded over 4 (forced CPU) devices = one device: the crossproduct build and the
bootstrap. The device count must be set before JAX starts, so each case runs in a fresh
Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r"""
import json, sys, warnings
import numpy as np
import jax
import jaxmm, jaxmm.sharding
warnings.simplefilter("ignore")
jaxmm.sharding.SHARD_MIN_ROWS = 0          # shard even this small build
used = {"products": 0, "lane_devices": 0}
_products, _lanes = jaxmm.sharding.sharded_products, jaxmm.sharding.shard_lanes
def products(*a):
    used["products"] += 1
    return _products(*a)
def lanes(idx):
    out = _lanes(idx)
    used["lane_devices"] = max(used["lane_devices"], len(out.sharding.device_set))
    return out
jaxmm.sharding.sharded_products, jaxmm.sharding.shard_lanes = products, lanes
rng = np.random.default_rng(0)
n = 501
import pandas as pd
df = pd.DataFrame({"x": rng.standard_normal(n), "g": rng.integers(0, 30, n), "h": rng.integers(0, 7, n)})
df["y"] = 1 + df.x + rng.standard_normal(30)[df.g] + rng.standard_normal(7)[df.h] + rng.standard_normal(n)
m = jaxmm.lmer("y ~ x + (1|g) + (1|h)", df)
b = m.bootstrap(nsim=12, seed=1, progress=False)
blocks = m.devfun.blocks
print(json.dumps({"devices": jax.local_device_count(), **used,
                  "A": np.asarray(blocks.A).ravel().tolist(), "C1": np.asarray(blocks.C1).ravel().tolist(),
                  "el_B": np.asarray(blocks.el_B).ravel().tolist(),
                  "crit": m.objective, "boot": b.table.select_dtypes("number").to_numpy().ravel().tolist()}))
"""


def _run(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sharded_equals_single_device():
    one, four = _run(1), _run(4)
    assert one["devices"] == 1 and four["devices"] == 4
    assert four["products"] > 0 and four["lane_devices"] == 4 and one["products"] == 0
    for key in ("A", "C1", "el_B", "boot"):
        a, b = np.array(four[key]), np.array(one[key])
        assert a.shape == b.shape and a.size > 0
        assert np.allclose(a, b, rtol=1e-10, atol=1e-10 * np.nanmax(np.abs(b)), equal_nan=True), key
    assert abs(four["crit"] / one["crit"] - 1) < 1e-10
