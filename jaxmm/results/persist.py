"""Saved fits: a small, versioned JSON file (no pickle) holding the formula, the optimizer
summary, theta, beta, sigma and a fingerprint of the data; loading it on the same data
restores the fit without re-optimizing (as MixedModels.jl's saved optimizer summaries)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, JaxmmError, JaxmmWarning

FORMAT = "jaxmm-fit"
VERSION = 1


def fingerprint(design) -> str:
    """SHA-256 of what a fit depends on: y, X and each term's level index and columns."""
    h = hashlib.sha256()
    for a in [design.y, design.X] + [x for t in design.terms for x in (t.index, t.Xt)]:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    h.update("\x00".join(design.x_names).encode())
    return h.hexdigest()


def save(fit, path) -> Path:
    """Write ``fit`` to ``path`` (JSON). Restore it with :func:`jaxmm.load`.

    Example:
        >>> import tempfile, os
        >>> df = jaxmm.datasets.load("sleepstudy")
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", df)
        >>> path = os.path.join(tempfile.mkdtemp(), "fit.json")
        >>> m2 = jaxmm.load(save(m, path), df)
        >>> bool((m2.fixef == m.fixef).all()), m2.sigma == m.sigma
        (True, True)
    """
    from .guards import require_lmm

    require_lmm(fit, "save")
    from .. import __version__

    opt = fit.opt
    doc = {
        "format": FORMAT, "version": VERSION, "jaxmm": __version__,
        "model": "LinearMixedModel", "formula": fit.formula, "reml": bool(fit.reml),
        "data_name": fit.data_name, "nobs": fit.nobs, "data_sha256": fingerprint(fit.design),
        "theta": [float(v) for v in opt.theta], "beta": [float(v) for v in fit.fixef],
        "sigma": float(fit.sigma), "x_names": list(fit.design.x_names),
        "optsum": {
            "theta0": [float(v) for v in opt.theta0], "fmin": float(opt.fmin),
            "n_iter": int(opt.n_iter), "n_eval": int(opt.n_eval), "status": int(opt.status),
            "message": opt.message, "max_grad": float(opt.max_grad),
            "hessian_min_eig": float(opt.hessian_min_eig), "converged": bool(opt.converged),
            "boundary": list(opt.boundary), "warnings": list(opt.warnings),
            "hessian": None if opt.hessian is None else np.asarray(opt.hessian).tolist(),
            "hessian_method": opt.hessian_method, "optimizer": opt.optimizer,
        },
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1))
    return path


def load(path, data):
    """Restore a fit saved by ``fit.save(path)`` on the same ``data`` without re-optimizing.

    The design is rebuilt from the formula and ``data``; a data set that differs from the one
    fitted (values, rows, factor levels) is refused with ``DataError``.

    Example:
        >>> import os, tempfile
        >>> path = m.save(os.path.join(tempfile.mkdtemp(), "fit.json"))
        >>> m2 = jaxmm.load(path, jaxmm.datasets.load("sleepstudy"))
        >>> round(m2.objective, 3), m2.opt.n_eval == m.opt.n_eval
        (1743.628, True)
    """
    from ..optimize.lmm import OptSummary
    from ..pipeline import lformula, mk_devfun
    from .lmm import LinearMixedModel

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise JaxmmError(f"cannot read a saved fit from {str(path)!r}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise JaxmmError(f"{str(path)!r} is not a saved jaxmm fit")
    if doc.get("version", 0) > VERSION:
        raise JaxmmError(f"{str(path)!r} was written by a newer jaxmm (format version "
                         f"{doc['version']}); upgrade jaxmm to read it")
    design = lformula(doc["formula"], data)
    if design.nobs != doc["nobs"] or fingerprint(design) != doc["data_sha256"]:
        raise DataError(
            f"the data differ from those the saved fit used ({doc['nobs']} observations, "
            f"fingerprint {doc['data_sha256'][:12]}...; these data give {design.nobs} "
            f"observations, {fingerprint(design)[:12]}...): refit with jaxmm.lmer instead"
        )
    o = doc["optsum"]
    opt = OptSummary(
        theta0=np.asarray(o["theta0"]), theta=np.asarray(doc["theta"]), fmin=o["fmin"],
        n_iter=o["n_iter"], n_eval=o["n_eval"], status=o["status"], message=o["message"],
        max_grad=o["max_grad"], hessian_min_eig=o["hessian_min_eig"], converged=o["converged"],
        boundary=o["boundary"], warnings=o["warnings"],
        hessian=None if o["hessian"] is None else np.asarray(o["hessian"]),
        hessian_method=o["hessian_method"], optimizer=o["optimizer"],
    )
    devfun = mk_devfun(design, doc["reml"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JaxmmWarning)  # reported when the fit was made
        fit = LinearMixedModel(design, devfun, opt, data_name=doc.get("data_name"))
    if not np.allclose(fit.fixef.to_numpy(), doc["beta"], rtol=1e-8, atol=0.0):
        raise DataError("the restored fixed effects differ from the saved ones: the data or "
                        "jaxmm's version changed the design; refit with jaxmm.lmer")
    return fit
