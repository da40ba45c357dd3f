"""Stimuli in real on-disk formats: word timings and videos.

Word timings come from Praat TextGrids (OpenNeuro ds003020: :func:`read_textgrid`;
:func:`write_textgrid` writes the same layout, as the simulated cohort does) and
from the gentle forced alignments of Narratives (``align.csv``, with the
punctuation of the ``transcript.txt`` gentle aligned: :func:`read_align_csv`).
Both give a table with columns ``word``, ``onset`` and ``offset`` (s).
:func:`read_video` reads the frames of a video file and when each is shown;
for whole movies, which would not fit in memory decoded at full size and rate,
:func:`read_movie_frames` keeps frames at a fixed rate and size as it decodes,
and :func:`read_movie_audio` reads the sound track.
"""

from __future__ import annotations

import bisect
import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import atomic_write

__all__ = ["GENTLE_WORD", "NONWORDS", "read_align_csv", "read_movie_audio", "read_movie_frames", "read_textgrid", "read_video",
           "read_wav", "write_movie", "write_textgrid", "write_wav"]

#: Labels of silences, breaths, laughs and noises in forced alignments (compare lowercased, stripped).
NONWORDS: frozenset[str] = frozenset(
    {"sp", "sil", "br", "lg", "ls", "ns", "sentence_start", "sentence_end",
     "{sp}", "{sil}", "{br}", "{lg}", "{ls}", "{ns}", ""}
)

_WORD_COLUMNS = ["word", "onset", "offset"]


# -- word timings from files ---------------------------------------------------
def _tier_key(name: str) -> str:
    """A tier name folded so that "Words", "word" and "words" compare equal."""
    name = name.strip().lower()
    return name.removesuffix("s")


def read_textgrid(path: str | os.PathLike, tier: str | int = "words") -> pd.DataFrame:
    """Read the intervals of one tier of a Praat TextGrid.

    Parameters
    ----------
    path : path
        The TextGrid file (short or long format).
    tier : str or int
        The tier's name (case-insensitive, singular or plural: "words" finds a
        tier called "word") or its index. In ds003020, tier 0 is the phones and
        tier 1 the words.

    Returns
    -------
    DataFrame with columns ``word`` (str), ``onset`` and ``offset`` (float
    seconds), sorted by onset; intervals labelled with a :data:`NONWORDS`
    label (silences, breaths, noises) are dropped.
    """
    from praatio import textgrid

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TextGrid not found: {path}")
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as err:  # praatio raises many kinds of errors on bad files
        raise ValueError(f"{path} is not a readable TextGrid: {err}") from err
    names = list(tg.tierNames)
    if isinstance(tier, (int, np.integer)):
        if not -len(names) <= tier < len(names):
            raise ValueError(f"tier index {tier} is out of range for {path}, which has tiers {names}")
        name = names[tier]
    else:
        matches = [n for n in names if _tier_key(n) == _tier_key(str(tier))]
        if not matches:
            raise ValueError(f"no tier {tier!r} in {path}; its tiers are {names}")
        name = matches[0]
    entries = tg.getTier(name).entries
    if entries and len(entries[0]) != 3:
        raise ValueError(f"tier {name!r} of {path} is a point tier, not an interval tier")
    rows = [(label.strip(), float(start), float(end)) for start, end, label in entries
            if label.strip().lower() not in NONWORDS]
    frame = pd.DataFrame(rows, columns=_WORD_COLUMNS).astype({"word": str, "onset": float, "offset": float})
    return frame.sort_values("onset", kind="stable").reset_index(drop=True)


def _intervals(frame: pd.DataFrame | None, label: str) -> list[tuple[float, float, str]]:
    if frame is None:
        return []
    missing = {label, "onset", "offset"} - set(frame.columns)
    if missing:
        raise ValueError(f"the {label}s table lacks columns {sorted(missing)}; it has {list(frame.columns)}")
    return [(float(a), float(b), str(w)) for w, a, b in zip(frame[label], frame["onset"], frame["offset"])]


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A WAV file as mono float32 samples in [-1, 1] and its sample rate.

    Integer samples are scaled by their type's range; several channels are averaged.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a readable WAV file.
    """
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        sr, audio = wavfile.read(path)
    except ValueError as err:
        raise ValueError(f"{path} is not a readable WAV file ({err})") from err
    if np.issubdtype(audio.dtype, np.integer):
        info = np.iinfo(audio.dtype)
        audio = (audio.astype(np.float32) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    audio = audio.astype(np.float32, copy=False)
    return (audio.mean(axis=1) if audio.ndim == 2 else audio), int(sr)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int) -> None:
    """Write float samples in [-1, 1] (clipped) as a 16-bit WAV file, which :func:`read_wav` reads back."""
    from scipy.io import wavfile

    wavfile.write(path, int(sr), (np.clip(audio, -1, 1) * 32767).astype(np.int16))


def write_textgrid(
    path: str | os.PathLike,
    words: pd.DataFrame,
    phones: pd.DataFrame | None = None,
    duration: float | None = None,
) -> Path:
    """Write word (and phone) timings as a long-format Praat TextGrid.

    The layout follows ds003020: tier 0 "phones", tier 1 "words", so
    :func:`read_textgrid` reads the file back.

    Parameters
    ----------
    path : path
        Where to write (atomically).
    words : DataFrame with columns ``word, onset, offset``
        Intervals must not overlap and must have positive length.
    phones : DataFrame with columns ``phone, onset, offset``, optional
        The phone tier is left empty when None.
    duration : float, optional
        The end time of the grid (default: the last offset).

    Returns
    -------
    The path written.
    """
    from praatio import textgrid

    word_entries = _intervals(words, "word")
    phone_entries = _intervals(phones, "phone")
    last = max([end for _, end, _ in word_entries + phone_entries], default=0.0)
    end = last if duration is None else float(duration)
    if end < last or end <= 0:
        raise ValueError(f"duration={duration} must be positive and cover the last offset ({last})")
    tg = textgrid.Textgrid()
    try:
        for name, entries in (("phones", phone_entries), ("words", word_entries)):
            tg.addTier(textgrid.IntervalTier(name, entries, 0.0, end))
    except Exception as err:  # praatio's TextgridStateError and friends
        raise ValueError(f"cannot write the {name} tier to {path}: {err}") from err
    return atomic_write(path, lambda tmp: tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True))


#: a word of a transcript as gentle cuts it (its ``MetaSentence``): letters, digits and underscores, with
#: apostrophes inside (``don't``); hyphens, punctuation and spaces separate words
GENTLE_WORD = re.compile(r"(?:\w|[’']\w)+")


def read_align_csv(path: str | os.PathLike, transcript: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a gentle forced alignment (the ``align.csv`` files of Narratives).

    The file has no header and four columns: the transcript word, the word
    gentle aligned, its onset and its offset in seconds; words gentle could not
    align have empty times. Gentle writes one row for every word of the
    transcript (:data:`GENTLE_WORD`), in order, and no punctuation.

    Parameters
    ----------
    path : path
        The ``align.csv`` file.
    transcript : path, optional
        The transcript gentle aligned (``transcript.txt`` beside ``align.csv``):
        its punctuation is put back on the words, in the column ``written``
        (``"Yes,"``, ``"\"Well"``, ``"twenty-"``: what comes after a word up to
        the next space or word belongs to it, and what opens the next word after a
        space belongs to that one), so that sentences can be told apart.

    Returns
    -------
    DataFrame with columns ``word`` (the transcript word, column 0), ``onset``
    and ``offset`` (float seconds), and ``written`` when a transcript is given;
    one row per line of the file, in the file's (the text's) order. Gentle's
    onsets go backwards in a few places; sorting
    by onset would move words out of their sentences, so the order is kept and
    the times are repaired instead: the aligned words whose onsets keep to the
    text's order (the longest run of the file's onsets that never decreases)
    keep their times, and the others count as unaligned. Missing times are
    filled by linear interpolation over the word index between the nearest
    aligned words before and after (onsets and offsets separately); unaligned
    words before the first or after the last aligned word take that word's
    times. No offset is before its onset.

    Raises
    ------
    ValueError
        When the transcript's words are not the alignment's (another story, or
        another version of the transcript): the message names the first row that
        differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"alignment file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row + [""] * (4 - len(row)) for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"{path} has no words")

    def seconds(text: str, line: int) -> float:
        try:
            return float(text) if text.strip() else np.nan
        except ValueError:
            raise ValueError(f"{path} line {line}: time {text!r} is not a number") from None

    words = [row[0] for row in rows]
    onset = np.array([seconds(row[2], i + 1) for i, row in enumerate(rows)])
    offset = np.array([seconds(row[3], i + 1) for i, row in enumerate(rows)])
    known = ~(np.isnan(onset) | np.isnan(offset))
    if not known.any():
        raise ValueError(f"{path}: no word is aligned")
    index = np.arange(len(rows))
    known[index[known][~_longest_nondecreasing(onset[known])]] = False
    onset = np.interp(index, index[known], onset[known])
    offset = np.maximum(np.interp(index, index[known], offset[known]), onset)
    table = pd.DataFrame({"word": words, "onset": onset, "offset": offset})
    if transcript is not None:
        table["written"] = _punctuated(words, Path(transcript), path)
    return table


def _punctuated(words: list[str], transcript: Path, align: Path) -> list[str]:
    """The words of an alignment with the transcript's punctuation around them."""
    if not transcript.is_file():
        raise FileNotFoundError(f"transcript not found: {transcript}")
    text = transcript.read_text(encoding="utf-8")
    spans = [m.span() for m in GENTLE_WORD.finditer(text)]
    for i, ((start, end), word) in enumerate(zip(spans, words)):
        if text[start:end] != word:
            raise ValueError(f"{transcript} does not match {align}: word {i + 1} is {text[start:end]!r} in the "
                             f"transcript and {word!r} in row {i + 1} of the alignment; use the transcript gentle aligned")
    if len(spans) != len(words):
        raise ValueError(f"{transcript} has {len(spans)} words and {align} {len(words)} rows; "
                         "use the transcript gentle aligned")
    gaps = [text[end:start] for (_, end), (start, _) in zip(spans, spans[1:])]
    lead = [_split_gap(" " + text[: spans[0][0]])[1]]
    trail = []
    for gap in gaps:
        after, before = _split_gap(gap)
        trail.append(after)
        lead.append(before)
    trail.append(_split_gap(text[spans[-1][1]:] + " ")[0])
    return [f"{a}{text[start:end]}{b}" for a, (start, end), b in zip(lead, spans, trail)]


def _split_gap(gap: str) -> tuple[str, str]:
    """The text between two words: what ends the first (up to a space), and what opens the second (after the last)."""
    spaces = [i for i, c in enumerate(gap) if c.isspace()]
    if not spaces:
        return gap, ""  # "twenty-five": the hyphen stays with the word before
    return gap[: spaces[0]], gap[spaces[-1] + 1:]


def _longest_nondecreasing(values: np.ndarray) -> np.ndarray:
    """Mask of a longest subsequence of ``values`` that never decreases (patience sorting, O(n log n))."""
    tails: list[float] = []  # tails[k]: the smallest last value of a kept run of length k + 1
    ends: list[int] = []     # the index of that value
    before = np.full(len(values), -1)
    for i, value in enumerate(values):
        k = bisect.bisect_right(tails, value)
        if k == len(tails):
            tails.append(value)
            ends.append(i)
        else:
            tails[k], ends[k] = value, i
        before[i] = ends[k - 1] if k else -1
    keep = np.zeros(len(values), dtype=bool)
    i = ends[-1] if ends else -1
    while i >= 0:
        keep[i], i = True, before[i]
    return keep


# -- video files --------------------------------------------------------------
def _video_backend() -> str:
    """The installed imageio plugin that decodes video containers ("pyav" or "FFMPEG")."""
    try:
        import imageio.v3  # noqa: F401
    except ImportError as err:
        raise ImportError("reading videos needs imageio and a video backend: pip install imageio av") from err
    try:
        import av  # noqa: F401

        return "pyav"
    except ImportError:
        pass
    try:
        import imageio_ffmpeg  # noqa: F401

        return "FFMPEG"
    except ImportError:
        raise ImportError(
            "reading video files (.mp4, .mkv, .avi, ...) needs a video backend for imageio: "
            "pip install av  (PyAV, recommended)  or  pip install imageio-ffmpeg"
        ) from None


_PILLOW_VIDEO = {".gif", ".apng", ".webp"}


def read_video(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read every frame of a video file, with the time each frame is shown.

    Video containers (.mp4, .mkv, .avi, .mov, .webm ...) are decoded through
    imageio with PyAV (``pip install av``) or imageio-ffmpeg, imported only
    here; animated GIF / APNG / WebP files through imageio's Pillow plugin.

    Parameters
    ----------
    path : path
        The video file.
    fps : float, optional
        The frame rate, when the file's metadata lack it (or to override it).

    Returns
    -------
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : float64 array of shape (n_frames,)
        Seconds from the start of the video.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    if path.suffix.lower() in _PILLOW_VIDEO:
        import imageio.v3 as iio

        frames = np.asarray(iio.imread(path, index=None, plugin="pillow", mode="RGB"))
        if frames.ndim == 3:
            frames = frames[None]
        if fps is None:
            meta = iio.immeta(path, plugin="pillow")
            ms = float(meta.get("duration", 0) or 0)
            if not ms > 0:
                raise ValueError(f"{path} does not state its frame duration; pass fps=")
            fps = 1000.0 / ms
    else:
        plugin = _video_backend()
        import imageio.v3 as iio

        try:
            frames = np.asarray(iio.imread(path, index=None, plugin=plugin))
            meta = iio.immeta(path, plugin=plugin)
        except Exception as err:  # decoders raise many kinds of errors on bad files
            raise ValueError(f"{path} is not a readable video: {err}") from err
        if fps is None:
            fps = meta.get("fps")
            if not fps:
                raise ValueError(f"{path} does not state its frame rate; pass fps=")
        if frames.ndim == 3:  # grey frames
            frames = np.repeat(frames[..., None], 3, axis=-1)
    if not fps > 0:
        raise ValueError(f"fps={fps} must be positive")
    frames = np.ascontiguousarray(frames[..., :3], dtype=np.uint8)
    return frames, np.arange(len(frames)) / float(fps)


# -- movies, decoded as a stream ---------------------------------------------------
def _open_movie(path: Path):
    """``path`` opened with PyAV; a file FFmpeg cannot read is a ValueError naming it."""
    import av

    if not path.is_file():
        raise FileNotFoundError(f"movie not found: {path}")
    try:
        return av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"{path} is not a readable movie file ({err})") from err


def _start(container) -> float:
    """The container's start time (s): the time base of every stream of the file."""
    return container.start_time / 1e6 if container.start_time is not None else 0.0


def _mono(frame) -> np.ndarray:
    """The mean of a planar audio frame's channels, but its low-frequency effects channel (a 5.1 track's LFE)."""
    samples = frame.to_ndarray()
    names = [c.name for c in frame.layout.channels]
    keep = [i for i, name in enumerate(names) if name != "LFE"] if len(names) == len(samples) else []
    return samples[keep or slice(None)].mean(axis=0)


def read_movie_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The sound track of a movie file, mixed to mono: float32 samples and the file's sample rate.

    Decoded with PyAV frame by frame (a whole movie's audio is small; its video
    is not: see :func:`read_movie_frames`). Sample 0 is at the start of the
    file, the time base of :func:`read_movie_frames`: a sound track that starts
    later is preceded by silence. Channels are averaged, as :func:`read_wav` does
    (but a low-frequency effects channel).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When FFmpeg cannot read it, or it has no audio stream.
    """
    import av

    path = Path(path)
    with _open_movie(path) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream (streams: {[s.type for s in container.streams]})")
        stream = container.streams.audio[0]
        sr = int(stream.sample_rate or stream.codec_context.sample_rate)
        to_float = av.AudioResampler(format="fltp")  # planar float, channels and rate kept
        chunks, lead = [], None
        try:
            for frame in container.decode(stream):
                if lead is None and frame.time is not None:
                    lead = frame.time - _start(container)
                chunks += [_mono(f) for f in to_float.resample(frame)]
            chunks += [_mono(f) for f in to_float.resample(None)]
        except av.FFmpegError as err:
            raise ValueError(f"{path}: its audio cannot be decoded ({err})") from err
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    shift = int(round((lead or 0.0) * sr))
    if shift > 0:
        audio = np.concatenate([np.zeros(shift, np.float32), audio])
    elif shift < 0:  # samples before the file's start (an encoder's priming)
        audio = audio[-shift:]
    return audio, sr


def read_movie_frames(path: str | os.PathLike, rate: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a movie file at a fixed rate and size, decoded as a stream.

    A movie decoded whole at its own rate and resolution would take tens of GB;
    here, for every time of the grid ``0, 1/rate, 2/rate, ...`` (s from the
    start of the file) the frame shown at that time (the last one to start at
    or before it) is kept, resized (FFmpeg's area filter) so that its short
    side is ``size`` pixels, the display aspect ratio kept. Grid times before
    the first frame are left out; the last frame is shown for its duration.

    Parameters
    ----------
    path : path
        The movie file.
    rate : float
        Frames kept per second.
    size : int
        Pixels of the short side of the kept frames.

    Returns
    -------
    frames : uint8 array of shape (n_frames, height, width, 3)
    times : float64 array of shape (n_frames,)
        The grid times kept (s), increasing.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When FFmpeg cannot read it, it has no video stream, or ``rate`` or ``size`` is not positive.
    """
    import av

    if not rate > 0 or not size >= 1:
        raise ValueError(f"rate={rate} and size={size} must be positive")
    path = Path(path)
    eps = 1e-6  # frame times are exact rationals, the grid is a float: equal within a microsecond
    kept: list[np.ndarray] = []
    times: list[float] = []
    with _open_movie(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream (streams: {[s.type for s in container.streams]})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = _start(container)
        period = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
        prev, prev_t, image, shape, k, n = None, 0.0, None, None, 0, 0

        def keep_until(t: float) -> None:
            """Keep ``prev`` (resized once) for the grid times before ``t``."""
            nonlocal image, k
            while k / rate + eps < t:
                if image is None:
                    image = prev.reformat(width=shape[1], height=shape[0], format="rgb24", interpolation="AREA").to_ndarray()
                kept.append(image)
                times.append(k / rate)
                k += 1

        try:
            for frame in container.decode(stream):
                t = frame.time - start if frame.time is not None else n * period
                n += 1
                if prev is None:
                    k = max(0, int(np.ceil((t - eps) * rate)))  # no frame is shown before the first
                    sar = stream.sample_aspect_ratio or 1
                    width, height = frame.width * float(sar), frame.height
                    scale = size / min(width, height)
                    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
                else:
                    keep_until(t)
                prev, image, prev_t = frame, None, t
            if prev is not None:
                shown = float(prev.duration * prev.time_base) if prev.duration and prev.time_base else period
                keep_until(prev_t + shown)
        except av.FFmpegError as err:
            raise ValueError(f"{path}: its video cannot be decoded ({err})") from err
    if not kept:
        raise ValueError(f"{path} has no video frames")
    frames = np.empty((len(kept), *kept[0].shape), dtype=np.uint8)
    for i in range(len(kept)):  # frame by frame, freeing the list as it goes: the peak stays one copy
        frames[i], kept[i] = kept[i], None
    return frames, np.asarray(times, dtype=float)


def write_movie(path: str | os.PathLike, frames: np.ndarray, fps: float, audio: np.ndarray, sr: int,
                lossless: bool = False) -> None:
    """Write frames and a mono sound track as a movie file, as the releases' are (or losslessly).

    ``.mkv`` is Matroska, ``.mp4`` MPEG-4. By default the video is H.264
    (MPEG-4 part 2 where PyAV's FFmpeg lacks libx264) and the sound AAC, as in
    CNeuroMod's and MUStARD's files; ``lossless=True`` (``.mkv`` only) writes
    FFV1 video and 32-bit float PCM sound, which :func:`read_movie_frames` and
    :func:`read_movie_audio` give back exactly.

    Parameters
    ----------
    path : path
        The file to write (``.mkv`` or ``.mp4``); its folder is made.
    frames : uint8 array of shape (n_frames, height, width, 3)
    fps : float
        Frames per second.
    audio : float array of shape (n_samples,)
    sr : int
        The sound's sample rate.
    lossless : bool
        FFV1 and PCM instead of H.264 and AAC.
    """
    from fractions import Fraction

    import av

    path = Path(path)
    formats = {".mkv": "matroska", ".mp4": "mp4"}
    if path.suffix not in formats or (lossless and path.suffix != ".mkv"):
        raise ValueError(f"{path}: write a .mkv or a .mp4 file (a lossless one: .mkv)")
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "ffv1" if lossless else "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", format=formats[path.suffix]) as out:
        video = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001),
                               options={"preset": "veryfast"} if codec == "libx264" else {})
        video.height, video.width, video.pix_fmt = frames.shape[1], frames.shape[2], "bgr0" if lossless else "yuv420p"
        sound = out.add_stream("pcm_f32le" if lossless else "aac", rate=sr, layout="mono")
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for at in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(np.asarray(audio[None, at : at + 1024], np.float32),
                                               format="flt" if lossless else "fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, at
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
