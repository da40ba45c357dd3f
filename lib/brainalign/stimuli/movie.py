"""The synthetic movie: a spoken dialogue, and shots of natural images with camera motion.

:func:`make_movie` speaks the lines of a dialogue (:func:`read_dialogue`) in
two espeak-ng voices (:func:`brainalign.stimuli.synthesize_speech`), cuts the
movie into shots of images that ship with installed packages
(:data:`MOVIE_IMAGES`, :func:`movie_image`) and renders them
(:func:`render_shots`). :func:`on_screen_at` and :func:`speaking_at` say whose
face is seen and who is heard at any time.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from .speech import synthesize_speech

__all__ = [
    "DIALOGUE",
    "EXPOSURE",
    "MOVIE_FACES",
    "MOVIE_IMAGES",
    "MOVIE_VOICES",
    "Movie",
    "dialogue_episodes",
    "make_movie",
    "movie_image",
    "on_screen_at",
    "read_dialogue",
    "render_shots",
    "speaking_at",
]

#: Images that ship inside installed packages (no download): name -> provenance and licence.
MOVIE_IMAGES: dict[str, str] = {
    "astronaut": "scikit-image sample: astronaut Eileen Collins, NASA photograph, public domain",
    "grace_hopper": "matplotlib sample_data: Rear Admiral Grace Hopper, US Navy photograph, public domain",
    "coffee": "scikit-image sample: coffee cup, CC0 (Rachel Michetti)",
    "chelsea": "scikit-image sample: Chelsea the cat, CC0 (Stefan van der Walt)",
    "rocket": "scikit-image sample: SpaceX rocket launch, released to the public domain by SpaceX",
    "camera": "scikit-image sample: cameraman, CC0 (Lav Varshney)",
    "coins": "scikit-image sample: Greek coins, Brooklyn Museum, no known copyright restrictions",
    "hubble_deep_field": "scikit-image sample: Hubble deep field, NASA, public domain",
}
#: The ranges of a shot's exposure and focus (uniform draws, one per shot): contrast about the frame's mean, brightness
#: added (a fraction of the full range) and the standard deviation of a Gaussian blur (a fraction of the frame's side)
EXPOSURE = {"contrast": (0.3, 1.0), "brightness": (-0.15, 0.15), "blur": (0.0, 0.02)}
#: The default faces of the two speakers of a movie: speaker -> image.
MOVIE_FACES = {"A": "astronaut", "B": "grace_hopper"}
#: The default espeak-ng voices of the two speakers.
MOVIE_VOICES = {"A": "en-us+f4", "B": "en-gb+m3"}
DIALOGUE = Path(__file__).resolve().parent.parent / "resources" / "stimuli" / "dialogue.tsv"


@functools.lru_cache(maxsize=16)
def movie_image(name: str) -> np.ndarray:
    """A natural image that ships with an installed package, as uint8 RGB of shape (height, width, 3)."""
    if name not in MOVIE_IMAGES:
        raise ValueError(f"unknown movie image {name!r}; valid: {sorted(MOVIE_IMAGES)}")
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            image = np.asarray(Image.open(f).convert("RGB"))
    else:
        import skimage.data

        image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    image.setflags(write=False)
    return image


def read_dialogue(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Dialogue lines: a tab-separated file with columns ``speaker`` and ``line`` (default: the packaged one).

    The packaged file holds the quoted speech of *Moby-Dick* (Project Gutenberg
    #2701, public domain) chapters 19 and 16, in order, one quoted paragraph a
    row, given to two speakers "A" (Ishmael where the text says "said I") and
    "B", who otherwise take turns; then (``chapter`` "watch") a conversation of
    two sailors on a night watch, written for this compendium in the novel's
    setting, so that the movie cohort has enough dialogue for 15 minutes of
    training movie.
    """
    path = Path(path) if path is not None else DIALOGUE
    if not path.is_file():
        raise FileNotFoundError(f"dialogue file not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"speaker", "line"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; it has {list(table.columns)}")
    return table[["speaker", "line"]].reset_index(drop=True)


def dialogue_episodes(runs: Sequence[str], lines: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Cut a dialogue into ``len(runs)`` contiguous episodes with about as many words each.

    The movie cohort's episodes are ``dialogue_episodes(train + test)`` with
    the runs of its split manifest (``manifests.read_manifest("simulated-movie")``).

    Parameters
    ----------
    runs : sequence of str
        The episodes' names, in the order they take the dialogue.
    lines : DataFrame with columns ``speaker, line``, optional
        The dialogue (default: :func:`read_dialogue`).

    Returns
    -------
    dict
        run -> its lines (a DataFrame with the columns of ``lines``, index from 0).
    """
    lines = read_dialogue() if lines is None else lines
    if not len(runs) or len(runs) > len(lines):
        raise ValueError(f"runs must name 1 to {len(lines)} episodes (one per line at most), got {len(runs)}")
    n_words = np.cumsum([len(str(x).split()) for x in lines["line"]])
    cuts = np.searchsorted(n_words, n_words[-1] * np.arange(1, len(runs)) / len(runs))
    bounds = [0, *map(int, cuts), len(lines)]
    return {run: lines.iloc[a:b].reset_index(drop=True) for run, a, b in zip(runs, bounds[:-1], bounds[1:])}


@dataclass
class Movie:
    """A synthetic movie: shots of still images with camera motion, and a spoken dialogue.

    Attributes
    ----------
    frames : uint8 array of shape (n_frames, size, size, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s): ``arange(n_frames) / fps``.
    fps : float
    audio : float32 array of shape (n_samples,), sample rate ``sr``
    sr : int
    words : DataFrame with columns ``word, onset, offset, speaker``
    lines : DataFrame with columns ``speaker, onset, offset, line`` (who speaks when)
    shots : DataFrame with columns ``onset, offset, image, on_screen, x0, y0, zoom0, x1, y1, zoom1, contrast, brightness, blur``
        ``on_screen`` is the speaker whose face the shot shows ("" for none);
        the crop of side ``zoom * min(height, width)`` moves linearly from
        centre ``(x0, y0)`` to ``(x1, y1)`` (fractions of the image). The
        shot's exposure and focus: its frames are blurred by a Gaussian of
        standard deviation ``blur`` (a fraction of the frame's side), their
        contrast about each frame's mean is scaled by ``contrast`` and
        ``brightness`` (a fraction of the full range) is added.
    """

    frames: np.ndarray
    frame_times: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int
    words: pd.DataFrame
    lines: pd.DataFrame
    shots: pd.DataFrame

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr

    def on_screen(self, times: np.ndarray | None = None) -> np.ndarray:
        """The speaker on screen at each time (default: each frame); "" where none is."""
        return on_screen_at(self.shots, self.frame_times if times is None else times)


def on_screen_at(shots: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """The ``on_screen`` entry of the shot showing at each time; array of str of shape (n_times,)."""
    times = np.asarray(times, dtype=np.float64)
    k = np.searchsorted(shots["onset"].to_numpy(), times, side="right") - 1
    inside = (k >= 0) & (times < shots["offset"].to_numpy()[np.clip(k, 0, None)])
    faces = shots["on_screen"].to_numpy(dtype=object)
    return np.where(inside, faces[np.clip(k, 0, None)], "").astype(str)


def speaking_at(words: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Who is saying a word at each time ("" in silence); array of str of shape (n_times,)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.full(len(times), "", dtype=object)
    for on, off, who in zip(words["onset"], words["offset"], words["speaker"]):
        out[(times >= on) & (times < off)] = who
    return out.astype(str)


def render_shots(shots: pd.DataFrame, frame_times: np.ndarray, size: int = 128) -> np.ndarray:
    """Render the frames of a shot list (bilinear crops of the images; see :class:`Movie`).

    Shot lists without the exposure columns (``contrast``, ``brightness``,
    ``blur``) are rendered as shot: contrast 1, brightness 0, no blur.

    Returns
    -------
    frames : uint8 array of shape (n_frames, size, size, 3); black outside every shot.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    frame_times = np.asarray(frame_times, dtype=np.float64)
    frames = np.zeros((len(frame_times), size, size, 3), np.uint8)
    unit = (np.arange(size) + 0.5) / size - 0.5
    for shot in shots.itertuples(index=False):
        image = movie_image(shot.image).astype(np.float32)
        h, w = image.shape[:2]
        blur = float(getattr(shot, "blur", 0.0)) * size
        contrast, brightness = float(getattr(shot, "contrast", 1.0)), 255 * float(getattr(shot, "brightness", 0.0))
        idx = np.flatnonzero((frame_times >= shot.onset) & (frame_times < shot.offset))
        for i in idx:
            a = (frame_times[i] - shot.onset) / max(shot.offset - shot.onset, 1e-9)
            x = (1 - a) * shot.x0 + a * shot.x1
            y = (1 - a) * shot.y0 + a * shot.y1
            side = ((1 - a) * shot.zoom0 + a * shot.zoom1) * min(h, w)
            rows = np.clip(y * h + unit * side, 0, h - 1)
            cols = np.clip(x * w + unit * side, 0, w - 1)
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            crop = np.stack([map_coordinates(image[..., c], [rr, cc], order=1) for c in range(3)], axis=-1)
            if blur > 0:
                crop = gaussian_filter(crop, sigma=(blur, blur, 0))
            mean = crop.mean()
            crop = mean + contrast * (crop - mean) + brightness
            frames[i] = np.clip(crop, 0, 255).round()
    return frames


def _resample_audio(audio: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    from fractions import Fraction

    if sr == new_sr:
        return audio.astype(np.float32)
    ratio = Fraction(int(new_sr), int(sr)).limit_denominator(1000)
    return signal.resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _plan_shots(rng: np.random.Generator, duration: float, lines: pd.DataFrame, faces: dict[str, str],
                shot_range: tuple[float, float], scenes: Sequence[str], face_p: tuple[float, float]) -> pd.DataFrame:
    """Cut the movie into shots; each shows the current speaker's face (p ``face_p[0]``), the other's (``face_p[1]``) or a scene."""
    speakers = sorted(faces)
    rows, t = [], 0.0
    while t < duration - 1e-9:
        length = min(float(rng.uniform(*shot_range)), duration - t)
        mid = t + length / 2
        talking = lines[(lines["onset"] <= mid) & (lines["offset"] > mid)]["speaker"]
        current = str(talking.iloc[0]) if len(talking) else str(rng.choice(speakers))
        others = [s for s in speakers if s != current]
        u = rng.uniform()
        if u < face_p[0] and current in faces:
            who = current
        elif u < face_p[0] + face_p[1] and others:
            who = str(rng.choice(others))
        else:
            who = ""
        image = faces[who] if who else str(rng.choice(list(scenes)))
        zoom0, zoom1 = rng.uniform(0.55, 0.95, 2)
        x0, y0, x1, y1 = 0.5 + rng.uniform(-0.12, 0.12, 4)
        rows.append((t, t + length, image, who, x0, y0, zoom0, x1, y1, zoom1))
        t += length
    return pd.DataFrame(rows, columns=["onset", "offset", "image", "on_screen", "x0", "y0", "zoom0", "x1", "y1", "zoom1"])


def make_movie(
    lines: pd.DataFrame | None = None,
    seed: int = 0,
    fps: float = 5.0,
    size: int = 128,
    sr: int = 16000,
    voices: dict[str, str] | None = None,
    faces: dict[str, str] | None = None,
    scenes: Sequence[str] | None = None,
    shot_range: tuple[float, float] = (2.0, 5.0),
    rate: int = 175,
    lead: float = 2.0,
    face_p: tuple[float, float] = (0.5, 0.2),
    exposure: bool = True,
) -> Movie:
    """Build a short movie: natural images as shots with camera motion, and a spoken dialogue.

    Each line is spoken by its speaker's espeak-ng voice (:func:`synthesize_speech`),
    the lines separated by pauses of 0.3-1 s, and now and then (p 0.15) by a
    silence of 3-6 s. The movie is cut into shots of ``shot_range`` seconds; a
    shot shows the face of the speaker talking at its middle (probability
    ``face_p[0]``, 0.5 by default), the other speaker's face (``face_p[1]``,
    0.2) or a scene without a face; the camera pans and zooms slowly within
    each shot. Each shot has its own exposure and focus (``exposure``):
    contrast, brightness and blur drawn from the ranges of ``EXPOSURE``, as
    cuts between cameras, lights and focus settings change them in a film.
    Everything is deterministic given ``seed``.

    Parameters
    ----------
    lines : DataFrame with columns ``speaker, line``, optional
        The dialogue (default: the first 6 lines of :func:`read_dialogue`).
    seed : int
        Seed of the pauses and the shots.
    fps : float
        Frame rate.
    size : int
        Frames are ``size x size`` RGB.
    sr : int
        Sample rate of the audio (espeak speaks at 22050 Hz; resampled).
    voices : dict, optional
        speaker -> espeak-ng voice (default ``MOVIE_VOICES``). Variants with a
        "breath" setting (e.g. ``+f1``, ``+f2``, ``+f3``, ``+f5``, ``+klatt``) add
        random noise and do not give the same audio twice.
    faces : dict, optional
        speaker -> image of their face (default ``MOVIE_FACES``).
    scenes : sequence of str, optional
        Images of the shots without a face (default: every other ``MOVIE_IMAGES``).
    shot_range : (float, float)
        Shortest and longest shot, seconds.
    rate : int
        Speaking rate in words per minute.
    lead : float
        Silence before the first and after the last line, seconds.
    face_p : (float, float)
        Probabilities that a shot shows the face of the speaker talking at its
        middle, and the other speaker's face (non-negative, summing to at most 1;
        a scene otherwise).
    exposure : bool, default=True
        Give each shot its own contrast, brightness and blur (``EXPOSURE``);
        False: every shot is rendered as shot.

    Returns
    -------
    :class:`Movie`
    """
    lines = read_dialogue().iloc[:6] if lines is None else lines
    voices = dict(MOVIE_VOICES if voices is None else voices)
    faces = dict(MOVIE_FACES if faces is None else faces)
    if not len(lines):
        raise ValueError("lines is empty: a movie needs at least one line of dialogue")
    unknown = sorted(set(lines["speaker"]) - set(voices))
    if unknown:
        raise ValueError(f"speakers {unknown} have no voice; voices are given for {sorted(voices)}")
    for image in list(faces.values()) + list(scenes or []):
        if image not in MOVIE_IMAGES:
            raise ValueError(f"unknown movie image {image!r}; valid: {sorted(MOVIE_IMAGES)}")
    scenes = [s for s in MOVIE_IMAGES if s not in faces.values()] if scenes is None else list(scenes)
    if not fps > 0 or int(size) < 8 or not shot_range[0] > 0 or shot_range[1] < shot_range[0]:
        raise ValueError(f"fps={fps} must be positive, size={size} at least 8 and shot_range={shot_range} increasing")
    if len(face_p) != 2 or min(face_p) < 0 or sum(face_p) > 1:
        raise ValueError(f"face_p={face_p!r} must be two probabilities (speaker's face, other face) summing to at most 1")
    from ..config import rng as seeded_rng

    rng = seeded_rng(seed, "movie")

    chunks, word_rows, line_rows = [np.zeros(int(round(lead * sr)), np.float32)], [], []
    t = lead
    for k, (who, text) in enumerate(zip(lines["speaker"], lines["line"])):
        if k:
            pause = rng.uniform(3.0, 6.0) if rng.uniform() < 0.15 else rng.uniform(0.3, 1.0)
            chunks.append(np.zeros(int(round(pause * sr)), np.float32))
            t += len(chunks[-1]) / sr
        speech = synthesize_speech(str(text), voice=voices[who], rate=rate)
        audio = _resample_audio(speech.audio, speech.sr, sr)
        chunks.append(audio)
        length = len(audio) / sr
        w = speech.words
        for word, on, off in zip(w["word"], w["onset"], w["offset"]):
            word_rows.append((word, t + min(on, length), t + min(off, length), str(who)))
        line_rows.append((str(who), t + w["onset"].iloc[0], t + min(w["offset"].iloc[-1], length), str(text)))
        t += length
    chunks.append(np.zeros(int(round(lead * sr)), np.float32))
    audio = np.concatenate(chunks).astype(np.float32)
    duration = len(audio) / sr
    words = pd.DataFrame(word_rows, columns=["word", "onset", "offset", "speaker"])
    spoken = pd.DataFrame(line_rows, columns=["speaker", "onset", "offset", "line"])
    shots = _plan_shots(rng, duration, spoken, faces, tuple(shot_range), scenes, (float(face_p[0]), float(face_p[1])))
    if exposure:  # drawn apart from the shots, so that the shot list is the same either way
        look = seeded_rng(seed, "movie-exposure")
        shots["contrast"] = look.uniform(*EXPOSURE["contrast"], len(shots))
        shots["brightness"] = look.uniform(*EXPOSURE["brightness"], len(shots))
        shots["blur"] = look.uniform(*EXPOSURE["blur"], len(shots))
    frame_times = np.arange(int(np.floor(duration * fps))) / fps
    frames = render_shots(shots, frame_times, int(size))
    return Movie(frames=frames, frame_times=frame_times, fps=float(fps), audio=audio, sr=int(sr),
                 words=words, lines=spoken, shots=shots)
