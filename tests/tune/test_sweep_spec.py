"""SweepSpec validation: what is refused before Ray starts, each with its own one-line message."""
import pytest

from mlplatform.config import ConfigError
from mlplatform.tune.sweep import SweepSpec, validate_spec


def test_random_search_with_fifo_is_accepted():
    validate_spec(SweepSpec(search="random", scheduler="fifo"))  # the pruning benchmark's baseline


@pytest.mark.parametrize("bad, message", [
    ({"search": "grid"}, "search: 'grid' is not allowed; choose one of 'tpe', 'random'"),
    ({"scheduler": "hyperband"}, "scheduler: 'hyperband' is not allowed; choose one of 'asha', 'fifo'"),
    ({"search": "grid", "scheduler": "hyperband"}, "search: 'grid' is not allowed"),  # the first bad field wins
    ({"tell": "complete"}, "tell: 'complete' is not allowed; choose one of 'outcome', 'ray'"),
])
def test_an_unknown_searcher_or_scheduler_is_named(bad, message):
    with pytest.raises(ConfigError) as e:
        validate_spec(SweepSpec(**bad))
    assert str(e.value).startswith(message), str(e.value)
    other = "scheduler" if str(e.value).startswith("search") else "search"
    assert other not in str(e.value)  # names only the field that is wrong
