"""The in-band detector against the ITU-T Q.24 receiver limits, on both sides of each limit.

Every signal goes through a G.711 round trip (μ-law unless a test says otherwise), as it
would reach us from a phone. Where a test walks through all 16 keys it builds one stream
with every key in turn and compares the digit string, so a key that is missed, doubled or
mistaken shows up in the assertion message.
"""
from __future__ import annotations

import difflib

import numpy as np
import pytest

from ivr.dtmf import KEYS, detect_digits
from ivr.dtmf_tones import (
    digit_frequencies,
    dtmf_tone,
    g711_round_trip,
    key_sequence,
    power_dbm0,
    sine,
    to_pcm,
    white_noise,
)

ON, OFF = 480, 480          # 60 ms presses and pauses unless a test is about timing


def heard(signal: np.ndarray, encoding: str = "PCMU") -> str:
    return detect_digits(g711_round_trip(to_pcm(signal), encoding))


@pytest.mark.parametrize("encoding", ["PCMU", "PCMA"])
def test_all_sixteen_keys(encoding):
    assert heard(key_sequence(KEYS, ON, OFF), encoding) == KEYS


def test_keys_in_any_order_and_repeated():
    keys = "1123581321345589*#0#*DCBA99"
    assert heard(key_sequence(keys, ON, OFF)) == keys


# -- frequency: operate within 1.5%, never at 3.5% or beyond ------------------------------------

@pytest.mark.parametrize("offset", [0.015, -0.015])
@pytest.mark.parametrize("tone", ["row", "col", "both"])
def test_frequency_off_by_1_5_percent_operates(offset, tone):
    row = offset if tone in ("row", "both") else 0.0
    col = offset if tone in ("col", "both") else 0.0
    assert heard(key_sequence(KEYS, ON, OFF, row_offset=row, col_offset=col)) == KEYS


@pytest.mark.parametrize("offset", [0.035, -0.035, 0.05, -0.05])
@pytest.mark.parametrize("tone", ["row", "col", "both"])
def test_frequency_off_by_3_5_percent_or_more_does_not_operate(offset, tone):
    # (Beyond about 6% a tone nears the next row or column and is that key's tone.)
    row = offset if tone in ("row", "both") else 0.0
    col = offset if tone in ("col", "both") else 0.0
    assert heard(key_sequence(KEYS, ON, OFF, row_offset=row, col_offset=col)) == ""


# -- level: operate from 0 to -25 dBm0 per tone, never at -55 dBm0 ------------------------------

@pytest.mark.parametrize("encoding", ["PCMU", "PCMA"])
@pytest.mark.parametrize("level", [0.0, -10.0, -25.0])
def test_level_0_to_minus_25_dbm0_operates(level, encoding):
    assert heard(key_sequence(KEYS, ON, OFF, level_dbm0=level), encoding) == KEYS


@pytest.mark.parametrize("level", [-55.0, -65.0])
def test_level_minus_55_dbm0_does_not_operate(level):
    assert heard(key_sequence(KEYS, ON, OFF, level_dbm0=level)) == ""


# -- twist: operate from 4 dB reverse (row louder) to 8 dB normal (column louder) -------------

@pytest.mark.parametrize("twist", [8.0, 4.0, -4.0])
@pytest.mark.parametrize("level", [-5.0, -25.0])
def test_twist_within_limits_operates(twist, level):
    # The weaker tone sits at `level`, so both stay within the operating range.
    row_level = level if twist >= 0 else level - twist
    assert heard(key_sequence(KEYS, ON, OFF, level_dbm0=row_level, twist_db=twist)) == KEYS


@pytest.mark.parametrize("twist", [13.0, -9.0])
def test_twist_well_beyond_limits_does_not_operate(twist):
    # Q.24 sets no non-operate twist; ours is 10 dB normal and 6 dB reverse, and a pair
    # this lopsided is more likely speech than a keypad.
    row_level = -20.0 if twist >= 0 else -20.0 - twist
    assert heard(key_sequence(KEYS, ON, OFF, level_dbm0=row_level, twist_db=twist)) == ""


@pytest.mark.parametrize("row_offset", [0.015, -0.015])
@pytest.mark.parametrize("col_offset", [0.015, -0.015])
@pytest.mark.parametrize("twist", [8.0, -4.0])
def test_limits_combined_operate(row_offset, col_offset, twist):
    """Worst corners at once: both tones off by 1.5%, full twist, and a 40 ms press."""
    assert heard(key_sequence(KEYS, 320, OFF, level_dbm0=-20.0 if twist > 0 else -16.0, twist_db=twist,
                              row_offset=row_offset, col_offset=col_offset)) == KEYS


# -- timing: 40 ms is a digit, 23 ms is not; a 40 ms pause separates, a 10 ms break does not ---

ALIGNMENTS = range(0, 160, 7)      # where the tone starts within a 20 ms frame


def test_40_ms_tone_is_a_digit_at_every_alignment():
    for lead in ALIGNMENTS:
        assert heard(key_sequence(KEYS, 320, OFF, lead_samples=400 + lead)) == KEYS, f"lead {lead}"


def test_23_ms_tone_is_not_a_digit_at_any_alignment():
    for lead in ALIGNMENTS:
        assert heard(key_sequence(KEYS, 184, OFF, lead_samples=400 + lead)) == "", f"lead {lead}"


def press_with_gap(key: str, gap: int, lead: int, phase_continuous: bool = True) -> np.ndarray:
    """60 ms of `key`, `gap` samples of silence, 60 ms more; the tone keeps its phase across
    the gap (the key stayed down) unless phase_continuous is False (a new press)."""
    whole = dtmf_tone(key, 2 * ON + gap, level_dbm0=-10.0)
    if not phase_continuous:
        whole = np.concatenate([whole[:ON], np.zeros(gap), dtmf_tone(key, ON, level_dbm0=-10.0, phases=(1.0, 2.0))])
    whole[ON:ON + gap] = 0.0
    return np.concatenate([np.zeros(lead), whole, np.zeros(OFF)])


def test_40_ms_pause_separates_two_presses_of_one_key():
    for key in KEYS:
        for lead in ALIGNMENTS:
            assert heard(press_with_gap(key, 320, 400 + lead, phase_continuous=False)) == key * 2, (key, lead)


def test_10_ms_interruption_does_not_split_a_press():
    for key in KEYS:
        for lead in ALIGNMENTS:
            assert heard(press_with_gap(key, 80, 400 + lead)) == key, (key, lead)
            assert heard(press_with_gap(key, 80, 400 + lead, phase_continuous=False)) == key, (key, lead)


def test_back_to_back_keys_without_pause_are_two_digits():
    signal = np.concatenate([np.zeros(400), dtmf_tone("1", ON), dtmf_tone("9", ON), np.zeros(OFF)])
    assert heard(signal) == "19"


# -- noise ---------------------------------------------------------------------------------

def test_white_noise_at_15_db_snr_detects_at_least_99_percent():
    """600 presses in white noise whose power is 15 dB below each press's power, through μ-law.

    20 streams of 30 random keys; each stream has its own level (-25..-5 dBm0 per tone) and
    each press its own twist (-4..+8 dB), phases and timing (45-100 ms on, 45-100 ms off)."""
    rng = np.random.default_rng(20240615)
    sent, received = "", ""
    for _ in range(20):
        keys = "".join(rng.choice(list(KEYS), 30))
        level = rng.uniform(-25, -5)
        power = power_dbm0(dtmf_tone("5", 8000, level_dbm0=level))
        parts = [np.zeros(400)]
        for key in keys:
            twist = rng.uniform(-4, 8)
            tone = dtmf_tone(key, int(rng.integers(360, 800)), level_dbm0=level, twist_db=twist,
                             phases=tuple(rng.uniform(0, 2 * np.pi, 2)))
            tone *= 10 ** ((power - power_dbm0(tone)) / 20)        # every press at the same power
            parts += [tone, np.zeros(int(rng.integers(360, 800)))]
        clean = np.concatenate(parts)
        noisy = clean + white_noise(len(clean), power - 15.0, rng)
        sent += keys
        received += heard(noisy)
    matcher = difflib.SequenceMatcher(None, sent, received, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    assert len(sent) == 600
    assert matched / len(sent) >= 0.99, (matched, len(sent))
    assert len(received) - matched <= 1, f"{len(received) - matched} digits heard that were not sent"


# -- what makes a tone pair not a key: harmonics ------------------------------------------------

@pytest.mark.parametrize("harmonic", ["2 row", "3 row", "2 col"])
def test_a_pair_with_a_strong_harmonic_is_not_a_key(harmonic):
    """Voices and instruments have harmonics; keypads do not. A harmonic 4 dB down rejects."""
    n, tone = int(harmonic[0]), harmonic[2:]
    signal = key_sequence("", 0, 0)
    for key in KEYS:
        row, col = digit_frequencies(key)
        pair = dtmf_tone(key, ON, level_dbm0=-10.0)
        pair += sine(n * (row if tone == "row" else col), ON, -14.0)
        signal = np.concatenate([signal, pair, np.zeros(OFF)])
    heard_keys = heard(signal)
    if harmonic == "2 row":
        # 2, 6 and C: the row's second harmonic falls next to the column tone, so it cannot
        # be measured apart from it; those keys are tested by test_note_an_octave_above...
        assert heard_keys == "26C"
    else:
        assert heard_keys == ""


def test_weak_harmonics_still_make_a_key():
    signal = key_sequence("", 0, 0)
    for key in KEYS:
        row, col = digit_frequencies(key)
        pair = dtmf_tone(key, ON, level_dbm0=-10.0)
        for f in (2 * row, 3 * row, 2 * col):
            pair += sine(f, ON, -32.0)
        signal = np.concatenate([signal, pair, np.zeros(OFF)])
    assert heard(signal) == KEYS


@pytest.mark.parametrize("key", ["2", "6", "C"])
def test_note_an_octave_above_the_row_is_not_the_column(key):
    """One note 2% below the row frequency with its second harmonic: the harmonic lands
    within 2.5% of the column tone, but at exactly twice the row, which a keypad never sends."""
    row, _ = digit_frequencies(key)
    f0 = row * 0.98
    note = sine(f0, ON, -10.0) + sine(2 * f0, ON, -10.0)
    assert heard(np.concatenate([np.zeros(400), note, np.zeros(OFF)])) == ""
