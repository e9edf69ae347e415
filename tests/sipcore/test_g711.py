"""G.711 tables: the ITU-T reference values, audioop as an independent cross-check, batches."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from sipcore import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # Python 3.11 still has it (removed in 3.13): Sun's g711.c, an independent implementation

ALL = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
CODES = np.arange(256, dtype=np.uint8)


def audioop_encode(samples: np.ndarray, law: str) -> np.ndarray:
    fn = audioop.lin2ulaw if law == "u" else audioop.lin2alaw
    return np.frombuffer(fn(samples.astype("<i2").tobytes(), 2), dtype=np.uint8)


def test_reference_values_from_the_standard():
    # Table 2a/2b of G.711 (as G.191's expand gives them, 16-bit left-justified).
    u = g711.ulaw_encode(np.array([0, -1, 32767, -32768, 1000, -1000], dtype=np.int16))
    assert u.tolist() == [0xFF, 0x7F, 0x80, 0x00, 0xCE, 0x4E]
    a = g711.alaw_encode(np.array([0, -1, 32767, -32768, 1000, -1000], dtype=np.int16))
    assert a.tolist() == [0xD5, 0x55, 0xAA, 0x2A, 0xFA, 0x7A]
    assert g711.ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]
    assert g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]


def test_decoding_matches_audioop_for_every_code():
    codes = CODES.tobytes()
    assert np.array_equal(g711.ulaw_decode(codes), np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"))
    assert np.array_equal(g711.alaw_decode(codes), np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))


def test_alaw_encoding_matches_audioop_for_every_sample():
    assert np.array_equal(g711.alaw_encode(ALL), audioop_encode(ALL, "a"))


def test_ulaw_encoding_matches_audioop_up_to_its_rounding_of_negative_samples():
    ours = g711.ulaw_encode(ALL)
    theirs = audioop_encode(ALL, "u")
    positive = ALL >= 0
    assert np.array_equal(ours[positive], theirs[positive])
    # G.191 takes the one's complement of a negative sample (|x| - 1) where Sun's code
    # negates it, so for x <= -5 the reference equals audioop's code for x + 4 (one
    # 14-bit step), and -4..-1 are negative zero.
    low = ALL <= -5
    assert np.array_equal(ours[low], audioop_encode(ALL[low] + 4, "u"))
    assert ours[(ALL < 0) & (ALL > -5)].tolist() == [0x7F] * 4
    assert 0 < np.count_nonzero(ours != theirs) < 1024  # boundaries only


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_every_code_survives_decode_then_encode(law):
    again = g711.encode(g711.decode(CODES, law), law)
    if law == "PCMU":
        # -0 (0x7F) decodes to 0, which encodes as +0 (0xFF); every other code is itself.
        assert np.array_equal(again[CODES != 0x7F], CODES[CODES != 0x7F]) and again[0x7F] == 0xFF
    else:
        assert np.array_equal(again, CODES)


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_quantisation_error_is_within_half_a_step(law):
    decoded = g711.decode(g711.encode(ALL, law), law).astype(np.int32)
    error = np.abs(decoded - ALL.astype(np.int32))
    magnitude = np.abs(ALL.astype(np.int32))
    # Steps double per segment: the error stays under 1/32 of the sample (plus the first
    # segment's fixed step), except where the top segment clips.
    unclipped = magnitude < 32000
    assert np.all(error[unclipped] <= magnitude[unclipped] / 32 + 16)


def test_a_batch_of_channels_encodes_like_each_channel():
    rng = np.random.default_rng(7)
    frames = rng.integers(-32768, 32767, size=(50, 160), dtype=np.int16)
    batch = g711.ulaw_encode(frames)
    assert batch.shape == (50, 160) and batch.dtype == np.uint8
    for row in range(50):
        assert np.array_equal(batch[row], g711.ulaw_encode(frames[row]))
    assert np.array_equal(g711.alaw_encode(frames[:, ::2]), g711.alaw_encode(frames[:, ::2].copy()))
    assert np.array_equal(g711.ulaw_encode(frames[3].astype("<i2").tobytes()), batch[3])


def test_payload_bytes_decode_to_int16():
    pcm = g711.alaw_decode(bytes([g711.ALAW_SILENCE]) * 160)
    assert pcm.dtype == np.int16 and pcm.shape == (160,) and set(pcm.tolist()) == {8}
    assert g711.ulaw_decode(bytearray([g711.ULAW_SILENCE] * 4)).tolist() == [0, 0, 0, 0]


def test_wrong_types_and_names_are_refused():
    with pytest.raises(TypeError, match="int16"):
        g711.ulaw_encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="uint8"):
        g711.alaw_decode(np.zeros(4, dtype=np.int16))
    with pytest.raises(ValueError, match="G.711"):
        g711.encode(np.zeros(4, dtype=np.int16), "G729")
    with pytest.raises(ValueError, match="G.711"):
        g711.decode(b"\x00", "opus")
    assert g711.ULAW_ENCODE.flags.writeable is False
