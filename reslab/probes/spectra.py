"""Statistics of gradient curves on a grid: autocorrelation, power spectrum, decay-law fits.

Pure numpy on arrays whose last axis is the grid, so they apply to any stack of curves
(seeds, depths, families) and can be checked on synthetic white and brown noise.
"""

from __future__ import annotations

import numpy as np

# A curve whose spread over the grid is below this fraction of its size is constant up to
# float rounding (float32 rounding through 50 layers of width 400 reaches ~1e-5) (e.g. the looks-linear net, which is exactly linear at initialization).
# Normalizing its rounding noise would report white noise where there is none.
CONSTANT_RTOL = 1e-4


def is_constant(curves: np.ndarray, rtol: float = CONSTANT_RTOL) -> np.ndarray:
    """True where a curve is constant over the grid up to float rounding (shape: curves.shape[:-1])."""
    c = np.asarray(curves, dtype=np.float64)
    spread = c.std(axis=-1)
    size = np.sqrt(np.mean(c * c, axis=-1))
    return spread <= rtol * size


def autocorrelation(curves: np.ndarray) -> np.ndarray:
    """The sample autocorrelation function of each curve along the last axis, lags 0..N-1.

    acf[k] = sum_i (g_i - mean)(g_{i+k} - mean) / sum_i (g_i - mean)^2 (the standard
    biased estimator, via FFT). A constant curve (``is_constant``) gets 1 at every lag: it
    is perfectly correlated with itself, and its rounding noise must not count as white.
    """
    c = np.asarray(curves, dtype=np.float64)
    n = c.shape[-1]
    centred = c - c.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(centred, n=2 * n, axis=-1)
    acov = np.fft.irfft(spec * np.conj(spec), n=2 * n, axis=-1)[..., :n]
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = acov / acov[..., :1]
    acf[is_constant(c)] = 1.0
    return acf


def power_spectrum(curves: np.ndarray) -> np.ndarray:
    """Periodogram |FFT(g - mean)|^2 / N at frequencies 1..N//2 (cycles per grid length)."""
    c = np.asarray(curves, dtype=np.float64)
    centred = c - c.mean(axis=-1, keepdims=True)
    return np.abs(np.fft.rfft(centred, axis=-1)[..., 1 : c.shape[-1] // 2 + 1]) ** 2 / c.shape[-1]


def spectral_slope(spectrum: np.ndarray) -> np.ndarray:
    """Least-squares slope of log power against log frequency: brown noise ~ -2, white ~ 0.

    ``spectrum`` holds powers at frequencies 1..K on the last axis. Frequencies with zero
    power are left out of the fit (a step exactly in the middle of the grid has no even
    harmonics); NaN where fewer than 3 frequencies remain.
    """
    s = np.asarray(spectrum, dtype=np.float64)
    valid = np.isfinite(s) & (s > 0)
    n = valid.sum(axis=-1)
    logf = np.broadcast_to(np.log(np.arange(1, s.shape[-1] + 1)), s.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(valid, np.log(np.where(valid, s, 1.0)), 0.0)
        mf = np.where(valid, logf, 0.0).sum(axis=-1, keepdims=True) / n[..., None]
        mp = logp.sum(axis=-1, keepdims=True) / n[..., None]
        df = np.where(valid, logf - mf, 0.0)
        slope = (df * (logp - mp)).sum(axis=-1) / (df * df).sum(axis=-1)
    return np.where(n >= 3, slope, np.nan)


def fit_decay(depths: np.ndarray, values: np.ndarray, floor: float = 0.05) -> dict[str, float]:
    """Fit an exponential law a*r^d and a power law a*d^(-p) to a positive decaying series.

    Fits are least squares in log space on the points with value > ``floor`` (below it a
    correlation is indistinguishable from the estimator's noise). Returns the rate r, the
    exponent p, each fit's RMS error in log space, the number of points used, and which
    law fits better; NaN entries when fewer than 3 points remain.
    """
    d = np.asarray(depths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v) & (v > floor)
    out = {"points": int(keep.sum())}
    nan = {"exp_rate": np.nan, "exp_rmse": np.nan, "power_exponent": np.nan, "power_rmse": np.nan, "better": ""}
    if keep.sum() < 3:
        return {**out, **nan}
    d, logv = d[keep], np.log(v[keep])
    fits = {}
    for name, x in (("exp", d), ("power", np.log(d))):
        coef = np.polyfit(x, logv, 1)
        fits[name] = (coef[0], float(np.sqrt(np.mean((np.polyval(coef, x) - logv) ** 2))))
    return {
        **out,
        "exp_rate": float(np.exp(fits["exp"][0])),
        "exp_rmse": fits["exp"][1],
        "power_exponent": float(-fits["power"][0]),
        "power_rmse": fits["power"][1],
        "better": "exponential" if fits["exp"][1] <= fits["power"][1] else "power",
    }


def theory_curve(law: str, depths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A theoretical decay law anchored at the first measured depth (NaN for an unknown law).

    "2^-L": value(d0) * 2^-(d - d0); "L^-1/2": value(d0) * sqrt(d0 / d); "1": all ones.
    Balduzzi2017 give the shape of the decay, not its constant, hence the anchor.
    """
    d = np.asarray(depths, dtype=np.float64)
    v0 = float(np.asarray(values, dtype=np.float64)[0])
    if law == "2^-L":
        return v0 * 2.0 ** -(d - d[0])
    if law == "L^-1/2":
        return v0 * np.sqrt(d[0] / d)
    if law == "1":
        return np.ones_like(d)
    return np.full_like(d, np.nan)
