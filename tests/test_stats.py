import math

import pytest

from reslab.studies.stats import betainc, fmt, greater, summarize, t_sf


def test_summary():
    s = summarize([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert str(s) == "2.0 ± 1.0"
    assert summarize([]).n == 0 and fmt(math.nan) == "n/a"


@pytest.mark.parametrize(
    "t,df,expected",
    [(0.0, 5, 0.5), (2.015, 5, 0.05), (2.776, 4, 0.025), (1.645, 1e6, 0.05), (12.706, 1, 0.025), (-2.776, 4, 0.975)],
)
def test_t_distribution_matches_tables(t, df, expected):
    assert t_sf(t, df) == pytest.approx(expected, abs=5e-4)


def test_betainc_known_values():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-4)


def test_welch_test():
    far = greater([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert far.significant() and far.difference == pytest.approx(9.0)
    close = greater([2.0, 3.0, 4.0], [1.9, 3.1, 3.8])
    assert not close.significant()
    assert not greater([5.0], [1.0]).significant()  # one seed: no variance, never significant
    assert not greater([1.0, 2.0], [5.0, 6.0]).significant()
