"""Ctrl-C and SIGTERM while weights load: an interrupt, not a corrupt weights file."""

import os
import signal
import threading

import pytest

from astroenhance import interrupts
from astroenhance.interrupts import sigterm_as_interrupt

from .conftest import REPO


def test_a_signal_inside_the_block_interrupts_after_it():
    ran = []
    with sigterm_as_interrupt() as terminated, pytest.raises(KeyboardInterrupt):
        with interrupts.deferred() as came:
            os.kill(os.getpid(), signal.SIGTERM)
            for i in range(100_000):  # Python code the handler would have interrupted
                ran.append(i)
        pytest.fail("the deferred SIGTERM was lost")
    assert len(ran) == 100_000 and came == [signal.SIGTERM] and terminated == [signal.SIGTERM]
    # Ctrl-C: Python's own handler (conftest sets it where the suite began with SIGINT ignored), after the block
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(100_000))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored before: ignored after, nothing raised
        with interrupts.deferred() as came:
            os.kill(os.getpid(), signal.SIGINT)
        assert came == [signal.SIGINT] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        # an ignored Ctrl-C to the process group, then the batch system's SIGTERM: the SIGTERM was lost
        with sigterm_as_interrupt() as terminated, pytest.raises(KeyboardInterrupt):
            with interrupts.deferred() as came:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(100_000))
            pytest.fail("the SIGTERM after an ignored Ctrl-C was lost")
        assert came == [signal.SIGINT, signal.SIGTERM] and terminated == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGINT, before)
    with interrupts.deferred() as came:
        pass
    assert came == []


def test_off_the_main_thread_nothing_is_deferred():
    done = []

    def work():
        with interrupts.deferred() as came:
            done.append(came)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert done == [[]]


def _hit_by_sigterm(load, said: str):
    """``load`` as a C loader hit by SIGTERM behaves: the interrupt raised inside it comes out as its own error."""

    def hit(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):  # Python code: where the handler runs (a C call like sum() may not check)
                pass
        except BaseException:
            raise RuntimeError(said) from None
        return load(*args, **kwargs)

    return hit


def test_sigterm_while_the_weights_load_is_an_interrupt_not_corrupt_weights(monkeypatch):
    """A `mosaic --enhance` given SIGTERM while it loaded the SR weights said "sr-hst-8x32.safetensors: tensors do not
    fit srresnet-8x32 (could not determine the shape of object type 'torch.storage.UntypedStorage')" and exited 1:
    the KeyboardInterrupt raised inside safetensors' tensor building came out as an error of its own."""
    from astroenhance.models import weights

    said = "could not determine the shape of object type 'torch.storage.UntypedStorage'"
    monkeypatch.setattr(weights, "load_file", _hit_by_sigterm(weights.load_file, said))
    info = weights.find_weights(REPO / "weights", "sr", "hst")
    with sigterm_as_interrupt() as terminated, pytest.raises(KeyboardInterrupt):
        weights.load_network(REPO / "weights", info)
    assert terminated == [signal.SIGTERM]


@pytest.mark.parametrize("loader", ["feature network", "inception"])
def test_the_other_torch_loaders_hand_an_interrupt_on_too(tmp_path, monkeypatch, loader):
    """`train --feature-net NAME:PATH` and `evaluate --inception PATH` said "not a readable torch weights file" where an
    interrupt came inside torch.load."""
    import torch

    from astroenhance.models.features import feature_network
    from astroenhance.models.inception import load_inception

    path = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1)}, path)

    monkeypatch.setattr(torch, "load", _hit_by_sigterm(lambda *args, **kwargs: {}, "unpickling stopped"))
    with sigterm_as_interrupt() as terminated, pytest.raises(KeyboardInterrupt):
        feature_network(f"mobilenet_v2:{path}") if loader == "feature network" else load_inception(path)
    assert terminated == [signal.SIGTERM]
