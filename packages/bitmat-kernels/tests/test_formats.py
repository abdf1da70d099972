import pytest
from bitmat_kernels.formats import BINARY, FORMAT_VERSION, TERNARY, packed_width, weight_format


def test_weight_format_names():
    assert weight_format(1.58) == TERNARY
    assert weight_format(1) == BINARY


@pytest.mark.parametrize("bad", [0, 2, 3, 1.5, "1.58", None, True])
def test_weight_format_rejects(bad):
    with pytest.raises((TypeError, ValueError), match="weight_bits"):
        weight_format(bad)


@pytest.mark.parametrize(
    ("k", "ternary", "binary"), [(1, 1, 1), (4, 1, 1), (5, 2, 1), (8, 2, 1), (9, 3, 2), (4096, 1024, 512)]
)
def test_packed_width(k, ternary, binary):
    assert packed_width(k, TERNARY) == ternary
    assert packed_width(k, BINARY) == binary


def test_format_version_is_known():
    from bitmat_kernels import SUPPORTED_FORMAT_VERSIONS

    assert FORMAT_VERSION in SUPPORTED_FORMAT_VERSIONS
