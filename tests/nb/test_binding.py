"""restate_nb.bind / unbind with real ipywidgets (in-process: no front end needed)."""

from __future__ import annotations

import gc
import weakref

import ipywidgets
import pytest

import restate_nb
from restate import ControllerSync

from .conftest import Shell, seen


@pytest.fixture
def controller() -> ControllerSync:
    return ControllerSync()


def test_binding_a_widget_to_a_missing_path_writes_the_widget_value(controller) -> None:  # type: ignore[no-untyped-def]
    slider = ipywidgets.IntSlider(value=4)
    restate_nb.bind(slider, "/n", controller=controller)
    assert controller.get_state("/n") == 4


def test_binding_to_an_existing_path_gives_the_widget_the_state_value(controller) -> None:  # type: ignore[no-untyped-def]
    controller.set_state("/n", 9)
    slider = ipywidgets.IntSlider(value=4)
    restate_nb.bind(slider, "/n", controller=controller)
    assert slider.value == 9


def test_changes_flow_both_ways_without_echo(controller) -> None:  # type: ignore[no-untyped-def]
    text = ipywidgets.Text()
    restate_nb.bind(text, "/name", controller=controller)
    writes: list[object] = []
    controller.subscribe("/name", lambda e: writes.append(e.new_value))
    changes: list[object] = []
    text.observe(lambda c: changes.append(c["new"]), names="value")
    text.value = "from widget"
    assert controller.get_state("/name") == "from widget"
    controller.set_state("/name", "from state")
    assert text.value == "from state"
    assert writes == ["from widget", "from state"]  # no write echoed back
    assert changes == ["from widget", "from state"]


def test_any_trait_can_be_bound(controller) -> None:  # type: ignore[no-untyped-def]
    box = ipywidgets.Checkbox()
    restate_nb.bind(box, "/ui/disabled", trait="disabled", controller=controller)
    controller.set_state("/ui/disabled", True)
    assert box.disabled is True


def test_deleting_the_path_leaves_the_widget_value(controller) -> None:  # type: ignore[no-untyped-def]
    slider = ipywidgets.IntSlider(value=3)
    restate_nb.bind(slider, "/n", controller=controller)
    controller.del_state("/n")
    assert slider.value == 3


def test_unbind_stops_both_directions(controller) -> None:  # type: ignore[no-untyped-def]
    slider = ipywidgets.IntSlider(value=1)
    other = ipywidgets.IntSlider(value=1)
    restate_nb.bind(slider, "/a", controller=controller)
    restate_nb.bind(slider, "/b", trait="max", controller=controller)
    restate_nb.bind(other, "/a", controller=controller)
    assert restate_nb.unbind(slider, "/a") == 1
    slider.value = 50
    assert controller.get_state("/a") == 1
    controller.set_state("/b", 77)
    assert slider.max == 77  # the other binding of the same widget stays
    assert restate_nb.unbind(slider) == 1
    controller.set_state("/b", 60)
    assert slider.max == 77
    controller.set_state("/a", 5)
    assert other.value == 5
    restate_nb.unbind(other)


def test_binding_twice_replaces_the_link(controller) -> None:  # type: ignore[no-untyped-def]
    slider = ipywidgets.IntSlider()
    restate_nb.bind(slider, "/n", controller=controller)
    restate_nb.bind(slider, "/n", controller=controller)
    writes: list[object] = []
    controller.subscribe("/n", lambda e: writes.append(e.new_value))
    slider.value = 2
    assert writes == [2]
    restate_nb.unbind(slider)


def test_binding_a_missing_trait_raises_and_binds_nothing(controller) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AttributeError, match="no trait 'colour'"):
        restate_nb.bind(ipywidgets.IntSlider(), "/n", trait="colour", controller=controller)
    assert controller.get_state("/") == {}


def test_widget_change_reruns_a_tracked_cell_at_once(shell: Shell) -> None:
    slider = ipywidgets.IntSlider(value=1)
    restate_nb.bind(slider, "/level")
    cell = shell.tracked('print("level", state["/level"])')
    slider.value = 8  # outside a cell execution, like a front-end drag
    assert seen(cell) == "level 8\n"
    restate_nb.unbind(slider)


def _collected(ref: weakref.ref[object]) -> bool:
    gc.collect()
    return ref() is None


def test_unbind_releases_the_widget_and_the_binding_callbacks(controller) -> None:  # type: ignore[no-untyped-def]
    slider = ipywidgets.IntSlider(value=1)
    restate_nb.bind(slider, "/level", controller=controller)
    restate_nb.bind(slider, "/top", trait="max", controller=controller)
    ref = weakref.ref(slider)
    assert restate_nb.unbind(slider) == 2
    slider.close()  # ipywidgets forgets a widget only when it is closed
    del slider
    assert _collected(ref)
    engine = controller._engine
    assert (len(engine.callbacks), engine.subs.size) == (0, 0)
