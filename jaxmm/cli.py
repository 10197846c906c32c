"""Command line: ``jaxmm fit "Reaction ~ Days + (Days|Subject)" --data sleepstudy``.

``--data`` takes a bundled data set name (``jaxmm datasets`` lists them) or a path to a CSV
or Parquet file. ``--ml`` fits by maximum likelihood (REML is the default), ``--json``
prints a machine-readable result instead of lme4's summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd

from . import datasets
from .errors import DataError, JaxmmError


def read_data(spec: str) -> tuple[pd.DataFrame, str]:
    """A bundled data set by name, or a CSV / Parquet file by path."""
    path = Path(spec)
    if path.suffix.lower() in (".csv", ".gz", ".parquet", ".pq") or path.exists():
        if not path.exists():
            raise DataError(f"data file {spec!r} does not exist")
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path), path.name
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise DataError("reading Parquet needs pyarrow: pip install 'jaxmm[parquet]'") from e
        return pd.read_csv(path), path.name
    return datasets.load(spec), spec


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def to_json(m) -> dict:
    """A fitted model's main results as plain JSON-able data."""
    vc = m.varcorr()
    return {
        "formula": m.formula,
        "reml": m.reml,
        "nobs": m.nobs,
        "n_dropped": m.n_dropped,
        "ngroups": m.ngroups,
        "criterion": m.objective,
        "family": getattr(getattr(m, "family", None), "name", None),
        "reml_criterion": getattr(m, "reml_criterion", None),
        "deviance": m.deviance,
        "loglik": m.loglik,
        "aic": m.aic,
        "bic": m.bic,
        "df_resid": m.df_resid,
        "sigma": getattr(m, "sigma", None),
        "theta": m.theta.to_dict(),
        "fixef": m.fixef.to_dict(),
        "stderr": m.stderr.to_dict(),
        "vcov": m.vcov.to_numpy().tolist(),
        "varcorr": [
            {k: (_num(v) if not isinstance(v, str) else v) for k, v in row.items()}
            for row in vc.astype(object).where(vc.notna(), None).to_dict("records")
        ],
        "is_singular": m.is_singular,
        "converged": m.opt.converged,
        "warnings": m.opt.warnings,
        "optimizer": {
            "iterations": m.opt.n_iter,
            "evaluations": m.opt.n_eval,
            "max_grad": m.opt.max_grad,
            "message": m.opt.message,
        },
    }


def _glmer(args, df: pd.DataFrame, name: str):
    from . import glmer
    from .family import binomial, poisson

    fam, _, link = args.family.lower().partition("/")
    makers = {"binomial": binomial, "poisson": poisson}
    if fam not in makers:
        raise JaxmmError(f"--family {args.family!r} is not supported: use binomial[/logit|probit|cloglog] or poisson")
    family = makers[fam](link) if link else makers[fam]()
    return glmer(args.formula, df, family=family, nagq=args.nagq, data_name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxmm", description="Linear mixed models, lme4-style, on JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a linear mixed model and print lme4's summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days|Subject)"')
    fit.add_argument("--data", required=True, help="bundled data set name, or a CSV / Parquet path")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--json", action="store_true", help="print a JSON result")
    fit.add_argument("--family", default=None,
                     help="fit a GLMM (glmer): binomial, poisson, or binomial/probit, binomial/cloglog")
    fit.add_argument("--nagq", type=int, default=1,
                     help="GLMM quadrature points: 1 Laplace (default), >1 adaptive Gauss-Hermite, 0 fast")
    sub.add_parser("datasets", help="list the bundled data sets")
    args = parser.parse_args(argv)

    if args.command == "datasets":
        print("\n".join(datasets.list()))
        return 0
    from .pipeline import lmer

    if args.family and args.ml:
        parser.error("--ml applies to linear mixed models; GLMMs are always fitted by maximum likelihood")
    if args.nagq != 1 and not args.family:
        parser.error("--nagq applies to GLMMs: give --family too")
    try:
        df, name = read_data(args.data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.family:
                m = _glmer(args, df, name)
            else:
                m = lmer(args.formula, df, reml=not args.ml, data_name=name)
    except JaxmmError as e:
        print(f"jaxmm: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(to_json(m), indent=2))
    else:
        print(m.summary())
    for w in caught:
        if not args.json:
            print(f"jaxmm: warning: {w.message}", file=sys.stderr)
    return 0


def run() -> None:
    """The ``jaxmm`` command (a process of its own): :func:`main`, with the garbage
    collector ignoring everything imported so far (``gc.freeze``: the modules of JAX, pandas
    and SciPy are never garbage) and, once the output is flushed, an exit without the
    interpreter's teardown, which spent ~0.2 s collecting those same objects. Nothing is
    left to write by then: the stored programs and the compilation cache are written when
    made."""
    import gc
    import os

    gc.freeze()
    try:
        code = main()
    except SystemExit as e:  # argparse's errors and --help
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
