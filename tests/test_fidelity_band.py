"""The fidelity verdict's band: what a reproduced cell may read, for each kind of paper cell."""

import pytest

from otarena.reporting.fidelity import band


def test_a_printed_zero_std_still_has_a_band():
    # Amos 2023 prints mlp-cycle hd-2 as "0.05 ± 0.00": a mean in [0.045, 0.055) and a std
    # below 0.005. 0.06 is within two such stds of such a mean; 0.08 is not.
    low, high = band([0.05, 0.0])
    assert low < 0.05 < high
    assert low <= 0.04 and 0.06 <= high
    assert not low <= 0.08 <= high
    assert (low, high) == pytest.approx((0.035, 0.065))


def test_a_std_cell_is_the_mean_within_two_stds_plus_rounding():
    low, high = band([0.26, 0.09])
    assert (low, high) == pytest.approx((0.26 - 0.195, 0.26 + 0.195))


def test_single_runs_get_a_quarter_or_a_tenth():
    assert band([14.1]) == pytest.approx((14.1 - 3.525, 14.1 + 3.525))
    assert band([0.1]) == pytest.approx((0.0, 0.2))


def test_a_paper_above_100_has_no_interval():
    assert band(">100") is None
