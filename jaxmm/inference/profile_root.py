"""Set-up of a model's profile (ML refit, parameters, base deviance) and the exact solution
of zeta(v) = target by a safeguarded Newton iteration.

zeta(v) = sign(v - estimate) * sqrt(dev(v) - dev_min) and its exact derivative
dev'(v) / (2 |zeta|) come from :func:`jaxmm.inference.profile_solve.solve_point`; each
step is warm-started from the previous one. Where the parameter has a closed bound
(sd >= 0, -1 <= cor <= 1) that zeta does not reach, the limit is the bound, as lme4's
``confint.thpr`` reports it (dyestuff2's lower sd limit is exactly 0).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from ..core.solve import estimates_jit
from ..covariance import Unstructured
from ..errors import ConvergenceError, ModelError
from ..optimize.lbfgs import STATUS_MESSAGES
from ..optimize.lmm import SINGULAR_TOL, diag_mask
from ..precision import compute
from .profile_params import CORMAX, initial_z, lme4_scale, param_specs
from .profile_solve import point_parameters, solve_point_packed, unpack_point

if TYPE_CHECKING:  # pragma: no cover
    from ..results.lmm import LinearMixedModel

#: Newton on zeta stops when |zeta - target| is below this.
ZETA_TOL = 1e-7


class Profiler:
    """Everything a profile of one fitted model needs (built once, reused for every point).

    Attributes:
        specs: the profiled parameters, lme4's order.
        base: the ML deviance at the ML optimum.
        est: the ML estimates on lme4's scale (sd/cor, sigma, beta).
        se: a scale per parameter for first steps (ML standard errors for beta).
    """

    def __init__(self, fit: LinearMixedModel):
        from ..results.lmm import LinearMixedModel as _LMM

        if not isinstance(fit, _LMM):
            raise ModelError(f"profiles need a fitted linear mixed model (jaxmm.lmer), got {type(fit).__name__}")
        lay, blocks = fit.devfun.layout, fit.devfun.blocks
        self.layout, self.blocks = lay, blocks
        self.specs = tuple(param_specs([(t.group, tuple(t.cnames)) for t in fit.terms], list(fit.design.x_names)))
        if fit.reml:  # lme4 profiles the ML deviance: refit by ML first (refitML)
            theta, base = self._ml_refit(fit.theta_vector)
            with compute():
                est = jax.device_get(estimates_jit(jnp.asarray(theta), blocks, lay))
        else:
            est, theta, base = fit._est, fit.theta_vector, fit.objective
        n = float(blocks.n)
        sigma = math.sqrt(float(est.pwrss) / n)
        self.names = [s.name for s in self.specs]
        self.theta, self.sigma, self.base = theta, sigma, base
        self.est = lme4_scale(theta, sigma, np.asarray(est.beta), lay.qs)
        RX = np.asarray(est.RX)
        Ri = np.linalg.inv(RX)
        se_beta = sigma * np.sqrt(np.sum(Ri * Ri, axis=0))
        nv = len(self.specs) - lay.p
        self.se = np.concatenate([np.full(nv, np.nan), se_beta])
        self.z_hat = [initial_z(theta, sigma, s) for s in self.specs]

    def _solve(self, k: int, v: float, z0: np.ndarray, hinv0: np.ndarray | None = None):
        reset = hinv0 is None
        if reset:
            hinv0 = np.eye(z0.size)
        args = (np.asarray(z0, np.float64), np.asarray(hinv0, np.float64), np.bool_(reset),
                np.float64(v), np.int32(k), self.blocks, self.layout, self.specs)
        if jax.config.jax_enable_x64:  # already inside compute() (the public entry points)
            return unpack_point(np.asarray(solve_point_packed(*args)))
        with compute():
            return unpack_point(np.asarray(solve_point_packed(*args)))

    def _ml_refit(self, theta0: np.ndarray) -> tuple[np.ndarray, float]:
        """ML estimate of theta (column signs normalized, numerically zero diagonals set to
        exactly zero: the deviance is even and smooth there, so that changes it by ~1e-12)
        and the ML deviance."""
        pt = self._solve(len(self.specs), 0.0, np.append(theta0, 0.0))
        if int(pt.status) >= 2:
            raise ConvergenceError(f"ML refit for the profile: {STATUS_MESSAGES[int(pt.status)]}")
        theta, dev = np.asarray(pt.z[:-1]), float(pt.dev)
        offs = np.cumsum((0,) + self.layout.theta_sizes)
        theta = np.concatenate([Unstructured(q).normalize(theta[a:b]) for q, a, b in
                                zip(self.layout.qs, offs[:-1], offs[1:])])
        tiny = diag_mask(self.layout) & (np.abs(theta) < SINGULAR_TOL)
        return np.where(tiny, 0.0, theta), dev

    def index(self, name: str) -> int:
        return self.names.index(name)

    # ----- one point ---------------------------------------------------------------------
    def point(self, k: int, v: float, z0: np.ndarray, hinv0: np.ndarray | None = None):
        """(zeta, dzeta/dv, z, hinv) with parameter k held at v, started at z0 (and the
        inverse-Hessian approximation of a nearby point, if given)."""
        spec = self.specs[k]
        vv = min(max(v, -CORMAX), CORMAX) if spec.kind == "cor" else v
        pt = self._solve(k, vv, z0, hinv0)
        if int(pt.status) == 2 and hinv0 is not None:  # retry without the carried curvature
            pt = self._solve(k, vv, z0, None)
        dev = float(pt.dev)
        if not math.isfinite(dev) or int(pt.status) >= 2:
            raise ConvergenceError(f"profiling {spec.name} at {v:.6g}: {STATUS_MESSAGES[int(pt.status)]}")
        diff = max(dev - self.base, 0.0)
        s = float(np.sign(v - self.est[k]))
        zeta = s * math.sqrt(diff)
        dz = s * float(pt.ddev) / (2.0 * math.sqrt(diff)) if diff > 0 else math.nan
        return zeta, dz, np.asarray(pt.z), np.asarray(pt.hinv)

    def parameters(self, k: int, v: float, z: np.ndarray) -> np.ndarray:
        """All parameters on lme4's scale at a profile point."""
        args = (np.asarray(z, np.float64), np.float64(v), np.int32(k), self.blocks, self.layout, self.specs)
        if jax.config.jax_enable_x64:
            flat = np.asarray(point_parameters(*args))
        else:
            with compute():
                flat = np.asarray(point_parameters(*args))
        m = self.layout.n_theta
        out = lme4_scale(flat[:m], float(flat[m]), flat[m + 1:], self.layout.qs)
        out[k] = v
        return out

    def first_step(self, k: int) -> float:
        """A small move away from the estimate (lme4: 1 %, or 1e-3 from zero)."""
        spec, est = self.specs[k], self.est[k]
        if spec.kind == "beta":
            return 0.05 * self.se[k]
        if spec.kind == "cor":
            return 0.01 * max(1.0 - abs(est), 1e-3)
        return 0.01 * est if est > 0 else 1e-3 * self.sigma

    # ----- exact limits ------------------------------------------------------------------
    def limit(self, k: int, target: float, start: tuple | None = None,
              maxit: int = 80) -> float:
        """The value where zeta = target (sign of target = direction), or the parameter's
        bound when zeta does not reach target before it.

        Newton steps on zeta with its exact derivative, kept inside the bracket once the
        target is passed. Every inner fit starts from the last point *inside* the target
        (continuity along the profile; a start from beyond it, e.g. a degenerate point
        near a correlation of +-1, can strand the inner fit). An sd's bound 0 is evaluated
        directly (the map is regular there); a correlation's bound is approached by halving
        the distance to it, since the map degenerates at +-1.
        """
        spec, est = self.specs[k], self.est[k]
        d = 1.0 if target > 0 else -1.0
        bound = spec.upper if d > 0 else spec.lower
        closed = spec.kind in ("sd", "cor") and math.isfinite(bound)
        if closed and d * (bound - est) <= 0:
            return bound
        inner, outer = est, None  # v with d*(zeta - target) < 0 / > 0
        zin, Hin = self.z_hat[k], None
        if start is None:
            v = est + d * self.first_step(k)
        else:
            v, zin, Hin = start
        if math.isfinite(bound) and d * (v - bound) >= 0:
            v = 0.5 * (est + bound)
        bound_done = False
        for _ in range(maxit):
            zeta, dz, z, H = self.point(k, v, zin, Hin)
            g = zeta - target
            if abs(g) < ZETA_TOL:
                return v
            if d * g < 0:
                if closed and v == bound:
                    return bound  # zeta does not reach the target before the bound
                inner, zin, Hin = v, z, H
            else:
                outer = v
            cand = v - g / dz if (math.isfinite(dz) and dz > 0) else math.nan
            if outer is not None:
                lo, hi = min(inner, outer), max(inner, outer)
                if not (lo < cand < hi) or not math.isfinite(cand):
                    cand = 0.5 * (inner + outer)
                if hi - lo <= 1e-12 * max(1.0, abs(v)):
                    return 0.5 * (inner + outer)
            else:
                span = abs(v - est) if v != est else self.first_step(k)
                if not math.isfinite(cand) or d * (cand - v) <= 0:
                    cand = v + d * 2.0 * span
                cand = v + d * min(abs(cand - v), 10.0 * span)
                if math.isfinite(bound) and d * (cand - bound) >= 0:
                    if spec.kind == "sd" and not bound_done:
                        cand, bound_done = bound, True
                    elif spec.kind == "cor" and abs(bound - inner) < 1e-9:
                        return bound  # zeta does not reach the target before +-1
                    else:
                        cand = inner + 0.5 * (bound - inner)
            v = cand
        raise ModelError(f"profile of {spec.name}: no convergence to zeta = {target:.4g}")
