"""BatchDetector: the same digits as detect_digits on the same audio, however channels are
batched; channel bookkeeping; clear errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.dtmf import KEYS, BatchDetector, detect_digits
from ivr.dtmf_tones import digit_frequencies, dtmf_tone, g711_round_trip, key_sequence, sine, to_pcm, white_noise

FRAME = 160


def mixed_stream(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Keys at random levels, twists and frequency errors (some outside the limits, some too
    short), some with harmonics, with noise and silence between them: plenty of decisions
    near every threshold."""
    parts, total = [], 0
    while total < seconds * 8000:
        key = KEYS[rng.integers(16)]
        level = rng.uniform(-45, 0)
        samples = int(rng.integers(120, 900))
        tone = dtmf_tone(key, samples, level_dbm0=level, twist_db=rng.uniform(-9, 13),
                         row_offset=rng.uniform(-0.04, 0.04), col_offset=rng.uniform(-0.04, 0.04),
                         phases=tuple(rng.uniform(0, 2 * np.pi, 2)))
        if rng.random() < 0.5:      # harmonics of either tone, around the harmonic thresholds
            row, col = digit_frequencies(key)
            for f in (2 * row, 3 * row, 2 * col):
                tone += sine(f, samples, level - rng.uniform(3, 25), phase=rng.uniform(0, 2 * np.pi))
        gap = white_noise(int(rng.integers(40, 1200)), rng.uniform(-70, -20), rng)
        parts += [tone + white_noise(len(tone), level - rng.uniform(5, 30), rng), gap]
        total += len(tone) + len(gap)
    signal = np.concatenate(parts)
    return g711_round_trip(to_pcm(signal[: len(signal) // FRAME * FRAME]))


def test_batch_gives_exactly_the_single_stream_digits():
    """24 streams fed in shuffled order, each tick a random subset (a channel left out just
    waits), against detect_digits on each whole stream."""
    rng = np.random.default_rng(11)
    streams = [mixed_stream(rng, rng.uniform(8, 14)) for _ in range(24)]
    expected = [detect_digits(s) for s in streams]
    assert sum(map(len, expected)) > 300          # the streams do contain digits

    detector = BatchDetector(64)
    ids = [detector.add_channel() for _ in range(64)]
    chosen = rng.permutation(ids)[:24]            # non-consecutive ids, in no order
    position = [0] * 24
    heard = [""] * 24
    while any(p < len(s) for p, s in zip(position, streams)):
        ready = [i for i in range(24) if position[i] < len(streams[i]) and rng.random() < 0.8]
        if not ready:
            continue
        order = rng.permutation(ready)
        frames = np.stack([streams[i][position[i]:position[i] + FRAME] for i in order])
        for ch, digit in detector.process(frames, chosen[order]):
            heard[int(np.flatnonzero(chosen == ch)[0])] += digit
        for i in order:
            position[i] += FRAME
    assert heard == expected


def test_consecutive_channels_give_the_same_digits_as_any_order():
    """The fast path (a run of consecutive ids, as the media loop passes them) against
    detect_digits."""
    rng = np.random.default_rng(12)
    streams = [mixed_stream(rng, 6.0)[: 6 * 8000] for _ in range(10)]
    detector = BatchDetector(10)
    channels = np.array([detector.add_channel() for _ in streams])
    heard = [""] * 10
    audio = np.stack(streams)
    for tick in range(audio.shape[1] // FRAME):
        for ch, digit in detector.process(audio[:, tick * FRAME:(tick + 1) * FRAME], channels):
            heard[ch] += digit
    assert heard == [detect_digits(s) for s in streams]


def test_a_stream_fed_in_pieces_gives_the_digits_of_the_whole():
    rng = np.random.default_rng(13)
    stream = mixed_stream(rng, 90.0)              # longer than feed_stream's one-minute chunks
    detector = BatchDetector(2)
    ch = detector.add_channel()
    digits, start = [], 0
    for frames in (1, 7, 250, 3, 4000, 2, 10_000):
        digits += detector.feed_stream(ch, stream[start:start + frames * FRAME])
        start += frames * FRAME
    assert start >= len(stream)
    assert "".join(digits) == detect_digits(stream)


def test_process_and_feed_stream_can_take_turns_on_one_channel():
    """Each window looks back over blocks (and their harmonics) from earlier ticks; whichever
    call fed them, the digits are those of the whole stream. Short presses (32-40 ms, just
    three or four hits each) make every window count; notes with a strong row harmonic
    between them must not become digits."""
    rng = np.random.default_rng(15)
    row, _ = digit_frequencies("5")
    parts, keys = [np.zeros(400)], ""
    for i in range(60):
        key = KEYS[rng.integers(16)]
        keys += key
        parts += [dtmf_tone(key, int(rng.integers(256, 320))), np.zeros(int(rng.integers(400, 700)))]
        if i % 6 == 5:
            n = int(rng.integers(800, 2400))
            parts += [dtmf_tone("5", n) + sine(3 * row, n, -13.0), np.zeros(500)]
    stream = g711_round_trip(to_pcm(np.concatenate(parts)))
    stream = stream[: len(stream) // FRAME * FRAME]
    expected = detect_digits(stream)
    assert len(expected) >= 50
    for pattern in ([2, 1], [1, 1], [3, 2], [1, 3]):
        detector = BatchDetector(2)
        detector.add_channel()
        ch = detector.add_channel()
        digits, start, turn = "", 0, 0
        while start < len(stream):
            piece = stream[start:start + pattern[turn % 2] * FRAME]
            if turn % 2 == 0:
                for i in range(len(piece) // FRAME):
                    digits += "".join(d for _, d in detector.process(piece[None, i * FRAME:(i + 1) * FRAME], np.array([ch])))
            else:
                digits += "".join(detector.feed_stream(ch, piece))
            start += len(piece)
            turn += 1
        assert digits == expected, pattern

    # A key through process, a pause and 40 ms of a note through feed_stream, then the rest of
    # the note through process: on the same two tones, its row harmonic (12 dB down) must keep
    # it from being a key.
    note = dtmf_tone("5", 2400) + sine(3 * row, 2400, -22.0)
    audio = g711_round_trip(to_pcm(np.concatenate([dtmf_tone("5", 640), np.zeros(960), note])))
    detector = BatchDetector(1)
    ch = detector.add_channel()
    digits = [d for t in range(4) for _, d in detector.process(audio[None, t * FRAME:(t + 1) * FRAME], np.array([ch]))]
    digits += detector.feed_stream(ch, audio[4 * FRAME:12 * FRAME])
    digits += [d for t in range(12, len(audio) // FRAME)
               for _, d in detector.process(audio[None, t * FRAME:(t + 1) * FRAME], np.array([ch]))]
    assert "".join(digits) == detect_digits(audio) == "5"


def test_digit_is_reported_within_55_ms_of_the_tone_starting():
    """A press is reported as it starts, not when it ends: at the latest in the tick after
    the third 5 ms window that holds it (the tone may start anywhere in a frame)."""
    for lead in range(0, 320, 9):
        audio = g711_round_trip(to_pcm(np.concatenate([np.zeros(800 + lead), dtmf_tone("5", 4000), np.zeros(800)])))
        detector = BatchDetector(1)
        ch = np.array([detector.add_channel()])
        for tick in range(len(audio) // FRAME):
            if detector.process(audio[None, tick * FRAME:(tick + 1) * FRAME], ch):
                break
        reported_at = (tick + 1) * FRAME
        assert reported_at - (800 + lead) <= 440, lead


def test_a_reused_channel_starts_fresh():
    detector = BatchDetector(1)
    ch = detector.add_channel()
    press = g711_round_trip(to_pcm(dtmf_tone("7", 800)))
    assert detector.process(press[None, :FRAME], np.array([ch])) == []
    assert [d for t in range(1, 5) for _, d in detector.process(press[None, t * FRAME:(t + 1) * FRAME],
                                                                 np.array([ch]))] == ["7"]
    detector.remove_channel(ch)
    again = detector.add_channel()
    assert again == ch
    # The key is still "held" in the audio, but this is a new call: it is a new press.
    assert [d for t in range(5) for _, d in detector.process(press[None, t * FRAME:(t + 1) * FRAME],
                                                             np.array([again]))] == ["7"]


def test_channels_are_handed_out_lowest_first_and_run_out_clearly():
    detector = BatchDetector(3)
    assert [detector.add_channel() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="all 3 DTMF detector channels are in use"):
        detector.add_channel()
    detector.remove_channel(1)
    assert detector.active_channels == 2
    assert detector.add_channel() == 1
    with pytest.raises(ValueError, match="not allocated"):
        detector.remove_channel(7)


def test_bad_input_gets_clear_errors():
    detector = BatchDetector(4)
    a, b = detector.add_channel(), detector.add_channel()
    silence = np.zeros((2, FRAME), dtype=np.int16)
    with pytest.raises(TypeError, match="frames must be int16 samples, got float64"):
        detector.process(silence.astype(np.float64), np.array([a, b]))
    with pytest.raises(ValueError, match=r"frames must have shape \(2, 160\)"):
        detector.process(np.zeros((2, 80), dtype=np.int16), np.array([a, b]))
    with pytest.raises(ValueError, match="channels 3 are not allocated"):
        detector.process(silence, np.array([a, 3]))
    with pytest.raises(ValueError, match="appears twice"):
        detector.process(silence, np.array([b, b]))
    with pytest.raises(ValueError, match="channel ids must be in 0..3"):
        detector.process(silence, np.array([a, 9]))
    with pytest.raises(ValueError, match="channels must be a 1-D array"):
        detector.process(silence, np.array([[a, b]]))
    assert detector.process(np.zeros((0, FRAME), dtype=np.int16), np.array([], dtype=int)) == []
    with pytest.raises(ValueError, match="sample_rate"):
        BatchDetector(1, 11025)
    with pytest.raises(ValueError, match="max_channels"):
        BatchDetector(0)
    with pytest.raises(TypeError, match="pcm must be int16"):
        detect_digits(np.zeros(800))
    with pytest.raises(ValueError, match="1-D"):
        detect_digits(np.zeros((2, 800), dtype=np.int16))
    assert detect_digits(np.zeros(0, dtype=np.int16)) == ""


def test_wideband_16_khz_audio():
    keys = "0123456789*#ABCD"
    signal = key_sequence(keys, 960, 960, sample_rate=16000)
    assert detect_digits(to_pcm(signal), sample_rate=16000) == keys
    detector = BatchDetector(1, 16000)
    assert detector.frame_samples == 320
