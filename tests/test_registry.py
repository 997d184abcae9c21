import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.registry import Registry

# Configuration, data loading and files: the same whatever the Keras backend.
pytestmark = pytest.mark.backend_neutral


def test_register_get_and_names():
    registry = Registry("thing")

    @registry.register("alpha")
    def alpha():
        return 1

    assert registry.get("alpha") is alpha
    assert registry.names() == ["alpha"]
    assert "alpha" in registry


def test_duplicate_name_raises():
    registry = Registry("thing")
    registry.register("alpha")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("alpha")(lambda: 2)


def test_unknown_name_lists_known_and_suggests():
    registry = Registry("model builder")
    registry.register("cnn")(lambda: 1)
    registry.register("mlp")(lambda: 2)
    with pytest.raises(ConfigError) as error:
        registry.get("cn")
    message = str(error.value)
    assert 'did you mean "cnn"' in message
    assert "known: cnn, mlp" in message
