"""Unbound bindings, closed bound widgets and closed trees leave nothing behind."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets
import pytest

from restate import ControllerSync
from restate_nb import bind, unbind
from restate_nb.binding import bindings


def _make_many(make: Callable[[int], Any], n: int = 200) -> list[weakref.ref[Any]]:
    refs = []
    for i in range(n):
        refs.append(weakref.ref(make(i)))
    gc.collect()
    return refs


@pytest.mark.parametrize("release", ["unbind then close", "close while bound"])
def test_200_released_bound_widgets_are_garbage_collected(release: str) -> None:
    controller = ControllerSync()
    before = len(bindings())

    def make(i: int) -> Any:
        slider = ipywidgets.IntSlider()
        bind(slider, f"/s{i}", controller=controller)
        if release == "unbind then close":
            assert unbind(slider) == 1
        slider.close()
        return slider

    refs = _make_many(make)
    assert sum(r() is not None for r in refs) == 0
    assert len(bindings()) == before
    assert (len(controller._engine.callbacks), controller._engine.subs.size) == (0, 0)
    controller.set_state("/s1", 5)  # nothing left to call


def test_unbind_leaves_no_callback_in_the_controller() -> None:
    controller = ControllerSync()
    slider = ipywidgets.IntSlider()
    controller.subscribe("/other", lambda event: None)  # someone else's callback stays
    engine_callbacks = dict(controller._engine.callbacks)
    bind(slider, "/v", controller=controller)
    unbind(slider)
    assert dict(controller._engine.callbacks) == engine_callbacks
    slider.value = 3  # no link any more: the state does not follow
    assert controller.get_state("/v") == 0
    slider.close()


def test_a_closed_widget_stops_following_the_state() -> None:
    controller = ControllerSync()
    slider = ipywidgets.IntSlider()
    bind(slider, "/v", controller=controller)
    slider.close()
    controller.set_state("/v", 9)
    assert slider.value == 0
