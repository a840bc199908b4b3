"""Host threads for the numpy work of reading and writing (`cores`): results in order, inputs drawn lazily, and
the sky-noise maps the same whatever the number of threads."""

import numpy as np
import pytest

from astroenhance import cores
from astroenhance.io import noise


@pytest.mark.parametrize("threads", [1, 3])
def test_in_order_keeps_the_order_and_draws_inputs_only_a_few_ahead(threads):
    drawn = []

    def jobs():
        for i in range(40):
            drawn.append(i)
            yield (lambda v: v * v), (i,)

    got = []
    for value in cores.in_order(jobs(), threads):
        got.append(value)
        assert len(drawn) - len(got) <= 2 * threads  # memory stays bounded: a few pieces waiting, not the frame
    assert got == [i * i for i in range(40)]


def test_a_failing_job_raises_in_the_caller():
    def jobs():
        yield (lambda: 1), ()
        yield (lambda: 1 / 0), ()

    with pytest.raises(ZeroDivisionError):
        list(cores.in_order(jobs(), 2))


def test_the_sky_noise_maps_do_not_depend_on_the_threads(monkeypatch):
    rng = np.random.default_rng(1)
    n = 200
    err = np.where(np.arange(n)[None, :] < n // 2, 1.0, 3.0) * np.ones((n, n))
    sci = 10 + rng.normal(0, 1, (n, n)) * err
    sci[50:60, 70:90] += 400  # a source
    sci[::17, ::13] = np.nan
    read_sci, read_err = (lambda a, b: sci[a:b]), (lambda a, b: err[a:b])
    grids = {}
    for share in (1, 3):
        monkeypatch.setattr(cores, "SHARE", share)
        grids[share] = (noise._estimated_sky_sigmas(read_sci, sci.shape, 16, 10.0, 2.0, noise.SKY_SHARE),
                        *noise._sky_sigmas(read_sci, read_err, sci.shape, 16, 10.0, 6.0, noise.SKY_SHARE))
    assert np.isfinite(grids[1][0]).sum() > 50  # blocks were measured
    for a, b in zip(grids[1], grids[3]):
        np.testing.assert_array_equal(a, b)
