"""segbench.registry: register, look up, duplicates, unknown names with suggestions."""

import pytest

from segbench.errors import UserError
from segbench.models import MODELS
from segbench.registry import Registry


def test_register_and_get_by_function_name_and_explicit_name():
    reg = Registry("widget")

    @reg.register()
    def alpha():
        return "a"

    @reg.register("beta_v2")
    def beta():
        return "b"

    assert reg.get("alpha") is alpha
    assert reg.get("beta_v2")() == "b"
    assert "alpha" in reg and "beta" not in reg
    assert reg.names() == ["alpha", "beta_v2"]


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError, match="widget 'x' is already registered"):
        reg.register("x")(lambda: 2)
    assert reg.get("x")() == 1  # the first registration is kept


def test_unknown_name_suggests_close_names():
    reg = Registry("widget")
    for name in ("resnet50", "resnet101", "vgg16"):
        reg.register(name)(lambda: None)
    with pytest.raises(UserError) as info:
        reg.get("resnet5")
    msg = str(info.value)
    assert "unknown widget 'resnet5'" in msg
    assert "did you mean" in msg and "resnet50" in msg
    assert "vgg16" not in msg


def test_unknown_name_without_close_match_lists_all():
    reg = Registry("widget")
    for name in ("b_name", "a_name"):
        reg.register(name)(lambda: None)
    with pytest.raises(UserError, match=r"known: a_name, b_name"):
        reg.get("zzzzzz")


def test_model_registry_suggestion():
    with pytest.raises(UserError, match="did you mean fast_scnn"):
        MODELS.get("fast_scn")
