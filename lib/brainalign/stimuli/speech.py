"""Speech synthesis with espeak-ng, with the time of each word and phone.

:func:`synthesize_speech` speaks a text through libespeak-ng (the library and
its data ship in the ``espeakng-loader`` package; called through ctypes) and
times each of its tokens from espeak's WORD and MARK events. Each call loads a
private copy of the library, so the same arguments always give the same audio.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import html
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Speech", "synthesize_speech"]

# -- speech synthesis with espeak-ng --------------------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _PITCH = 1, 3
_EVENT_END_OF_LIST, _EVENT_WORD, _EVENT_MARK, _EVENT_PHONEME = 0, 1, 3, 7

_ESPEAK_LOCK = threading.Lock()


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # priority byte, then the first language
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as err:
        raise RuntimeError("speech synthesis needs espeak-ng: pip install espeakng-loader") from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


@contextlib.contextmanager
def _espeak() -> Iterator[tuple[ctypes.CDLL, int, str]]:
    """A fresh, initialised copy of libespeak-ng, its sample rate and data folder.

    The synthesiser keeps state between utterances in static variables (the
    pitch flutter phase, the gain control) that neither ``espeak_Terminate``
    nor a new ``espeak_Initialize`` resets, so the same text speaks slightly
    differently each time in one process. Loading a private copy of the
    library for each call starts every utterance from the same state.
    """
    import _ctypes

    lib_path, data_path = _espeak_paths()
    with _ESPEAK_LOCK, tempfile.TemporaryDirectory(prefix="brainalign-espeak-") as tmp:
        copy = Path(tmp) / Path(lib_path).name
        try:
            shutil.copyfile(lib_path, copy)
            lib = ctypes.CDLL(str(copy))
        except OSError as err:
            raise RuntimeError(f"cannot load espeak-ng from {lib_path} ({err}): pip install espeakng-loader") from err
        try:
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
            lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
            ]
            # The data folder itself (or its parent) must be given; otherwise the
            # library looks in the build machine's install prefix and fails.
            sr = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 500, data_path.encode(), _INITIALIZE_PHONEME_EVENTS
            )
            if sr <= 0:
                raise RuntimeError(f"espeak-ng failed to initialise with data at {data_path}")
            try:
                yield lib, sr, data_path
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)


@functools.lru_cache(maxsize=1)
def _voice_names() -> tuple[dict[str, str], dict[str, str]]:
    """Lowercased voice names -> espeak identifiers, and lowercased variants -> file names."""
    voices: dict[str, str] = {}
    with _espeak() as (lib, _, data_path):
        listed = lib.espeak_ListVoices(None)
        i = 0
        while listed[i]:
            voice = listed[i].contents
            ident = voice.identifier.decode()
            voices.setdefault(ident.lower(), ident)
            voices.setdefault(ident.rsplit("/", 1)[-1].lower(), ident)
            if voice.languages:
                voices.setdefault(voice.languages[1:].decode().lower(), ident)
            i += 1
    variants = {p.name.lower(): p.name for p in (Path(data_path) / "voices" / "!v").iterdir()}
    return voices, variants


def _resolve_voice(voice: str) -> str:
    """The espeak identifier (with variant) of a voice name such as "en-us" or "en-gb+f3"."""
    voices, variants = _voice_names()
    base, _, variant = voice.strip().partition("+")
    ident = voices.get(base.lower())
    if ident is None or (variant and variant.lower() not in variants):
        english = sorted(k for k in voices if k.startswith("en") and "/" not in k)
        raise ValueError(
            f"unknown espeak-ng voice {voice!r}; valid names include {english} "
            f"(and {len(voices)} names in all, e.g. 'fr', 'de'), optionally with a variant "
            f"such as '+f3' or '+m3' from {sorted(variants)[:12]}..."
        )
    return ident + (f"+{variants[variant.lower()]}" if variant else "")


@dataclass
class Speech:
    """Synthetic speech and when its words and phones were said.

    Attributes
    ----------
    audio : array of shape (n_samples,)
        float32 waveform in [-1, 1].
    sr : int
        Sample rate in Hz.
    words : DataFrame with columns ``word, onset, offset``
        One row per token of the text, times in seconds.
    phones : DataFrame with columns ``phone, onset, offset``
        espeak-ng phoneme mnemonics (stress marks included), pauses left out.
    """

    audio: np.ndarray
    sr: int
    words: pd.DataFrame
    phones: pd.DataFrame

    @property
    def duration(self) -> float:
        """The length of the audio in seconds."""
        return len(self.audio) / self.sr


def _phone_table(phonemes: list[tuple[int, str]], end_ms: int) -> pd.DataFrame:
    """Phones from PHONEME events: each lasts until the next; pauses and empty phones dropped."""
    rows = []
    for k, (start, name) in enumerate(phonemes):
        stop = phonemes[k + 1][0] if k + 1 < len(phonemes) else end_ms
        if not name.startswith("_") and stop > start:
            rows.append((name, start / 1000, stop / 1000))
    return pd.DataFrame(rows, columns=["phone", "onset", "offset"]).astype(
        {"phone": str, "onset": float, "offset": float}
    )


def _word_times(onsets: np.ndarray, phones: pd.DataFrame, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets of every token from their own onsets (NaN where espeak gave none).

    Tokens with a time earlier than every later token's are anchors. A token
    with no time, or one no earlier than the next anchor (espeak folds
    unstressed words such as "the" into a neighbour), shares the interval of
    the anchor before it (the first anchor's, at the start). Each anchor's
    interval runs to the end of its last spoken phone (leaving out a trailing
    pause) or to the next anchor, and is split evenly among the tokens that
    share it, so that all intervals have positive length and are in order.
    """
    n = len(onsets)
    anchors: list[int] = []
    bound = end
    for i in range(n - 1, -1, -1):
        if np.isfinite(onsets[i]) and onsets[i] < bound:
            anchors.append(i)
            bound = onsets[i]
    anchors.reverse()
    if not anchors:  # nothing timed: spread the tokens over the audio
        edges = np.linspace(0.0, end, n + 1)
        return edges[:-1], edges[1:]
    starts = [0] + anchors[1:]  # leading untimed tokens join the first anchor
    stops = anchors[1:] + [n]
    on, off = np.empty(n), np.empty(n)
    phone_on, phone_off = phones["onset"].to_numpy(), phones["offset"].to_numpy()
    for a, first, last in zip(anchors, starts, stops):
        t0 = onsets[a]
        t1 = onsets[last] if last < n else end
        inside = (phone_on >= t0) & (phone_on < t1)
        t_end = min(phone_off[inside].max(), t1) if inside.any() else t1
        edges = np.linspace(t0, t_end, last - first + 1)
        on[first:last], off[first:last] = edges[:-1], edges[1:]
    return on, off


def synthesize_speech(text: str, voice: str = "en-us", rate: int = 160, pitch: int | None = None) -> Speech:
    """Speak a text with espeak-ng and time each of its words.

    Tokens are ``text.split()``; each is sent as SSML preceded by a
    ``<mark/>``. A token's onset is the audio position of espeak's WORD event
    for it (mapped back through its character position), else of its mark.
    Marks alone are not enough: espeak drops the mark of a word that follows a
    full stop, and folds unstressed words ("the", "a") into a neighbour; see
    ``_word_times`` for how such tokens are placed. Times have a resolution of
    1 ms. The same arguments always give the same audio.

    Parameters
    ----------
    text : str
        Clean text; punctuation stays attached to the tokens in ``words``.
    voice : str
        An espeak-ng voice: a language such as "en-us", "en-gb", "en-gb-x-rp",
        optionally with a variant, e.g. "en-us+f3", "en-gb+m3".
    rate : int
        Speaking rate in words per minute (80 to 450).
    pitch : int, optional
        Base pitch, 0 to 100 (espeak's default, 50, when None).

    Returns
    -------
    :class:`Speech`, with one row of ``words`` per token.
    """
    tokens = text.split()
    if not tokens:
        raise ValueError("text has no words to speak")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate={rate} must be between 80 and 450 words per minute")
    if pitch is not None and not 0 <= pitch <= 100:
        raise ValueError(f"pitch={pitch} must be between 0 and 100")
    ident = _resolve_voice(voice)

    source, starts = "<speak>", []
    for i, token in enumerate(tokens):
        source += f'<mark name="{i}"/>'
        starts.append(len(source))
        source += html.escape(token, quote=False) + " "
    source += "</speak>"
    starts_arr = np.array(starts)

    chunks: list[np.ndarray] = []
    word_events: list[tuple[int, int]] = []  # (audio ms, 1-based character position)
    marks: dict[int, int] = {}
    phonemes: list[tuple[int, str]] = []

    def collect(wav, n_samples, events) -> int:
        if n_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        k = 0
        while events[k].type != _EVENT_END_OF_LIST:
            event = events[k]
            if event.type == _EVENT_WORD:
                word_events.append((event.audio_position, event.text_position))
            elif event.type == _EVENT_MARK and event.id.name:
                marks.setdefault(int(event.id.name), event.audio_position)
            elif event.type == _EVENT_PHONEME:
                phonemes.append((event.audio_position, event.id.string.decode("utf-8", "replace")))
            k += 1
        return 0

    callback = _SynthCallback(collect)
    data = source.encode("utf-8") + b"\0"
    with _espeak() as (lib, sr, _):
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(ident.encode()) != 0:
            raise ValueError(f"espeak-ng could not load voice {voice!r} ({ident})")
        lib.espeak_SetParameter(_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PITCH, 50 if pitch is None else int(pitch), 0)
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _SSML, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")

    audio = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    end = len(audio) / sr
    onsets = np.full(len(tokens), np.nan)
    for ms, position in word_events:
        k = int(np.searchsorted(starts_arr, position - 1, side="right")) - 1
        if k >= 0 and np.isnan(onsets[k]):
            onsets[k] = ms / 1000
    for k, ms in marks.items():
        if 0 <= k < len(tokens) and np.isnan(onsets[k]):
            onsets[k] = ms / 1000
    phones = _phone_table(phonemes, round(end * 1000))
    on, off = _word_times(onsets, phones, end)
    words = pd.DataFrame({"word": tokens, "onset": on, "offset": off})
    return Speech(audio=audio, sr=int(sr), words=words, phones=phones)
