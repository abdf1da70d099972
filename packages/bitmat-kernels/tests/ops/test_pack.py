import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.formats import packed_width
from hypothesis import given, settings
from hypothesis import strategies as st

# K past 256 / 512 spans several column blocks of the kernels (the unpack race of v1 hid there)
SHAPES = [(1, 1), (1, 3), (3, 4), (5, 5), (2, 7), (7, 8), (4, 9), (3, 67), (2, 130), (2, 3, 13), (17, 1001), (3, 2051)]


def ternary_codes(shape, gen=None):
    return torch.randint(-1, 2, shape, dtype=torch.int8, generator=gen)


def binary_codes(shape, gen=None):
    return torch.randint(0, 2, shape, dtype=torch.int8, generator=gen) * 2 - 1


@pytest.mark.parametrize("shape", SHAPES)
def test_ternary_round_trip(backend, shape):
    codes = ternary_codes(shape)
    packed = bk.pack_ternary(codes)
    assert packed.dtype == torch.uint8
    assert packed.shape == (*shape[:-1], packed_width(shape[-1], "ternary"))
    assert torch.equal(bk.unpack_ternary(packed, shape[-1]), codes)


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_round_trip(backend, shape):
    codes = binary_codes(shape)
    packed = bk.pack_binary(codes)
    assert packed.shape == (*shape[:-1], packed_width(shape[-1], "binary"))
    assert torch.equal(bk.unpack_binary(packed, shape[-1]), codes)


def test_ternary_layout_is_the_documented_one():
    # K = 6 -> KP = 2; byte j holds columns j, 2 + j, 4 + j, (6 + j: padding, code 0)
    codes = torch.tensor([[-1, 0, 1, 1, 0, -1]], dtype=torch.int8)
    stored = codes.to(torch.int32) + 1  # [0, 1, 2, 2, 1, 0]
    byte0 = stored[0, 0] | stored[0, 2] << 2 | stored[0, 4] << 4 | 1 << 6
    byte1 = stored[0, 1] | stored[0, 3] << 2 | stored[0, 5] << 4 | 1 << 6
    assert bk.pack_ternary(codes).tolist() == [[int(byte0), int(byte1)]]


def test_binary_layout_is_the_documented_one():
    codes = torch.tensor([[1, -1, -1, 1, 1, 1, -1, 1, 1]], dtype=torch.int8)  # K = 9 -> KP = 2
    bits = (codes > 0).to(torch.int32)[0]
    byte0 = sum(int(bits[2 * s]) << s for s in range(5))  # columns 0, 2, 4, 6, 8
    byte1 = sum(int(bits[2 * s + 1]) << s for s in range(4))  # columns 1, 3, 5, 7
    assert bk.pack_binary(codes).tolist() == [[byte0, byte1]]


def test_triton_matches_reference_bytes(triton_backend):
    codes = ternary_codes((9, 37))
    with bk.use_backend("reference"):
        expected = bk.pack_ternary(codes)
    assert torch.equal(bk.pack_ternary(codes), expected)


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_other_integer_dtypes(dtype):
    codes = ternary_codes((3, 10))
    assert torch.equal(bk.unpack_ternary(bk.pack_ternary(codes.to(dtype)), 10), codes)


def test_non_contiguous_codes_are_accepted():
    codes = ternary_codes((10, 6)).t()
    assert torch.equal(bk.unpack_ternary(bk.pack_ternary(codes), 10), codes)


def test_pack_generic_by_bits():
    codes = binary_codes((4, 11))
    assert torch.equal(bk.unpack(bk.pack(codes, weight_bits=1), 11, weight_bits=1), codes)


# --- bad input ---------------------------------------------------------------------------------


def test_codes_outside_the_ternary_alphabet():
    with pytest.raises(ValueError, match=r"'codes' must hold codes in \{-1, 0, 1\}, got value 2"):
        bk.pack_ternary(torch.tensor([[0, 2]], dtype=torch.int8))


def test_zero_is_not_binary():
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        bk.pack_binary(torch.tensor([[1, 0, -1]], dtype=torch.int8))


def test_float_codes_are_refused():
    with pytest.raises(TypeError, match="'codes' must have dtype int8"):
        bk.pack_ternary(torch.zeros(2, 2))


def test_empty_codes_refused():
    with pytest.raises(ValueError, match="at least one column"):
        bk.pack_ternary(torch.zeros(2, 0, dtype=torch.int8))


def test_scalar_codes_refused():
    with pytest.raises(ValueError, match="at least 1 dimension"):
        bk.pack_ternary(torch.tensor(1, dtype=torch.int8))


def test_in_features_must_match_packed_width():
    packed = bk.pack_ternary(ternary_codes((2, 10)))  # KP = 3 -> 9..12 columns
    for k in (9, 10, 11, 12):
        bk.unpack_ternary(packed, k)
    for bad in (8, 13):
        with pytest.raises(ValueError, match=f"in_features={bad} needs"):
            bk.unpack_ternary(packed, bad)


def test_unpack_rejects_wrong_dtype_and_non_contiguous():
    with pytest.raises(TypeError, match="'packed' must have dtype uint8"):
        bk.unpack_ternary(torch.zeros(2, 3, dtype=torch.int8), 12)
    packed = torch.zeros(6, 4, dtype=torch.uint8).t()
    with pytest.raises(ValueError, match="must be contiguous"):
        bk.unpack_ternary(packed, 24)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_unpack_rejects_bad_in_features(bad):
    with pytest.raises(ValueError, match="'in_features' must be a positive int"):
        bk.unpack_ternary(torch.zeros(2, 3, dtype=torch.uint8), bad)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), k=st.integers(1, 70), seed=st.integers(0, 2**31), binary=st.booleans())
def test_round_trip_property(rows, k, seed, binary):
    gen = torch.Generator().manual_seed(seed)
    codes = binary_codes((rows, k), gen) if binary else ternary_codes((rows, k), gen)
    wb = 1 if binary else 1.58
    packed = bk.pack(codes, weight_bits=wb)
    assert torch.equal(bk.unpack(packed, k, weight_bits=wb), codes)
    with bk.use_backend("triton"):
        assert torch.equal(bk.pack(codes, weight_bits=wb), packed)
        assert torch.equal(bk.unpack(packed, k, weight_bits=wb), codes)
