"""The registry helper: decorator registration, lookups, did-you-mean errors."""
import pytest

from vla_core.registry import Registry, UnknownName


def test_register_and_look_up_by_name():
    things = Registry("widget")

    @things.register("round")
    class Round:
        pass

    things.add("square", dict)
    assert things.get("round") is Round and things["square"] is dict
    assert list(things) == ["round", "square"] and len(things) == 2 and "round" in things
    assert things.items() == [("round", Round), ("square", dict)]


def test_an_unknown_name_says_the_closest_and_every_accepted_one():
    things = Registry("policy type")
    for name in ("act", "diffusion", "mlp"):
        things.add(name, object)
    with pytest.raises(UnknownName) as err:
        things.get("difusion")
    assert str(err.value) == "unknown policy type 'difusion'; did you mean 'diffusion'? accepted: act, diffusion, mlp"
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="accepted: act, diffusion, mlp$"):
        things.get("zzzz")
    with pytest.raises(UnknownName):
        things.get(["unhashable"])


def test_a_name_is_bound_once():
    things = Registry("engine")
    things.add("cpu", int)
    things.add("cpu", int)  # the same entry again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="engine 'cpu' is registered twice"):
        things.add("cpu", float)
    with pytest.raises(ValueError, match="non-empty string"):
        things.add("", float)


def test_a_registry_with_a_name_attribute_tells_each_entry_its_name():
    things = Registry("policy type", name_attr="type_name")

    @things.register("act")
    class Act:
        pass

    class Other:
        pass

    assert Act.type_name == "act" and things.get("act") is Act
    with pytest.raises(ValueError, match="registered twice"):
        things.add("act", Other)
    assert not hasattr(Other, "type_name")  # a refused entry is left as it was
