"""normcore.__all__ is exactly what the package exports."""

import types

import normcore


def test_all_lists_every_public_name_and_nothing_else():
    public = {
        name
        for name, value in vars(normcore).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(normcore.__all__) == public | {"__version__"}
    assert len(normcore.__all__) == len(set(normcore.__all__))


def test_every_exported_name_resolves():
    for name in normcore.__all__:
        assert getattr(normcore, name) is not None
    assert callable(normcore.run) and normcore.RunConfig().norm == "none"
