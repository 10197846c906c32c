"""Conditional modes of the random effects and their conditional variances (host, NumPy).

For each term, ``b = Lambda u``. The conditional covariance lme4 reports (``condVar``) is
``sigma^2 Lambda (L L')^{-1} Lambda'`` restricted to each level's q x q diagonal block, where
L is the Cholesky factor of ``Lambda'Z'Z Lambda + I``. With L = [[L11, 0], [L21, L22]]
(term 1 block diagonal), the blocks are
``L11_j^{-T} (I + V_j'V_j) L11_j^{-1}`` for term 1, with ``V = L22^{-1} L21`` computed in
chunks of levels, and the diagonal blocks of ``L22^{-T} L22^{-1}`` for the other terms.
"""

from __future__ import annotations

import numpy as np

from .._lazy import lazy_module

sl = lazy_module("scipy.linalg")  # ~70 ms of import jaxmm; needed by the variances only


def term_modes(u1, u_rest, Ts, layout, nlevels) -> list[np.ndarray]:
    """b for every term as (nlevels, q) arrays, in layout (sorted) order."""
    out = [np.asarray(u1)[: nlevels[0]] @ Ts[0].T]
    for term, T, nl in zip(layout.rest, Ts[1:], nlevels[1:]):
        u = np.asarray(u_rest)[term.offset : term.offset + term.nlevels * term.q]
        out.append((u.reshape(term.nlevels, term.q) @ T.T)[:nl])  # drop padding levels
    return out


def cond_cov(est, blocks, layout, Ts, nlevels, sigma: float, chunk_elems: int = 20_000_000):
    """Conditional covariance blocks (nlevels, q, q) of b for every term."""
    rz, q1 = layout.rz, layout.q1
    L11 = np.asarray(est.L11)[: nlevels[0]]
    L22 = np.asarray(est.L22)[:rz, :rz]
    Li11 = np.linalg.inv(L11) if q1 > 1 else 1.0 / L11
    T1 = Ts[0]
    out = []

    # Term 1: L11^{-T} (I + V_j' V_j) L11^{-1}, V = L22^{-1} W, W_j = Lambda_r' B_j G_j.
    inner = np.broadcast_to(np.eye(q1), (nlevels[0], q1, q1)).copy()
    if rz:
        el_row = np.asarray(blocks.el_row)
        el_j = np.asarray(blocks.el_j)
        el_B = np.asarray(blocks.el_B)
        real = np.any(el_B != 0, axis=1)
        el_row, el_j, el_B = el_row[real], el_j[real], el_B[real]
        G = np.einsum("ab,jcb->jac", T1, np.linalg.inv(L11))  # T1 L11^{-T}
        step = max(1, chunk_elems // max(1, rz * q1))
        for start in range(0, nlevels[0], step):
            stop = min(nlevels[0], start + step)
            sel = (el_j >= start) & (el_j < stop)
            Bd = np.zeros((rz, stop - start, q1))
            np.add.at(Bd, (el_row[sel], el_j[sel] - start), el_B[sel])
            W = lambda_t_rows(np.einsum("bjc,jcd->bjd", Bd, G[start:stop]), layout, Ts[1:])
            V = sl.solve_triangular(L22, W.reshape(rz, -1), lower=True).reshape(W.shape)
            inner[start:stop] += np.einsum("ajc,ajd->jcd", V, V)
    cov_u1 = np.einsum("jba,jbc,jcd->jad", Li11, inner, Li11)
    out.append(sigma**2 * np.einsum("ab,jbc,dc->jad", T1, cov_u1, T1))

    if rz:
        Linv = sl.solve_triangular(L22, np.eye(rz), lower=True)
        for term, T, nl in zip(layout.rest, Ts[1:], nlevels[1:]):
            cols = Linv[:, term.offset : term.offset + nl * term.q]  # real levels only
            cols = cols.reshape(rz, nl, term.q)
            cu = np.einsum("anq,anr->nqr", cols, cols)
            out.append(sigma**2 * np.einsum("ab,nbc,dc->nad", T, cu, T))
    return out


def lambda_t_rows(M: np.ndarray, layout, Ts_rest) -> np.ndarray:
    """Lambda_rest' M for M with rz leading rows (padding rows unchanged)."""
    out = M.copy()
    for term, T in zip(layout.rest, Ts_rest):
        s = slice(term.offset, term.offset + term.nlevels * term.q)
        blk = M[s].reshape((term.nlevels, term.q) + M.shape[1:])
        out[s] = np.einsum("ba,lb...->la...", T, blk).reshape((-1,) + M.shape[1:])
    return out
