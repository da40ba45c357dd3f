"""Stimuli: word timings, resampling to TRs, HRFs and synthetic speech.

Word timings come from Praat TextGrids (OpenNeuro ds003020), from the gentle
``align.csv`` files of Narratives, or from :func:`synthesize_speech`, which
speaks a text with espeak-ng and reports when each word was said. Features
sampled at word times are brought onto the fMRI grid with
:func:`lanczos_resample`, delayed with :func:`make_delayed` or convolved with
the canonical HRF (:func:`convolve_hrf`).

Time base
---------
Every time is in seconds from the stimulus onset of its run. A volume is
acquired from its *onset* ``t_k`` (``Dataset.tr_times``: the trigger times)
to ``t_k + TR``. The instant a volume stands for, where stimulus features are
sampled, is :func:`sample_times`: ``t_k + TR / 2`` (``at="centre"``, the
Huth lab's LeBel pipeline, ``DataSequence.from_grid``) or ``t_k``
(``at="onset"``, Study 1's Narratives code); each dataset names its default
(``Dataset.sample_at``). A word stands at its midpoint (:func:`word_times`).

Around a sampling time ``s_k`` the features are read as follows, and nowhere
else is a fraction of a TR added:

* *windows of context* (the audio a speech model hears, the text an
  instruction model reads, the audio and frames of an audio-video model) end
  at ``s_k``: nothing after the sampling time enters them (causal);
* *resampling kernels* are centred on ``s_k`` and so reach past it: the
  Lanczos filter of :func:`lanczos_resample` by ``window`` sampling periods
  (3 TRs by default, most of its weight within half a TR), the per-volume box
  of :func:`frames_per_tr` by half a TR. Behind an FIR delay of ``d`` TRs the
  Lanczos kernel reaches ``3 - d`` TRs past the volume it predicts (none from
  a delay of 3 TRs on).

A response planted at lag ``k`` volumes on these sampling times is recovered
at FIR delay ``k`` (the simulated cohorts are generated on them).

Modules
-------
The implementation lives in four modules along the seams of the subject;
every public name can be imported from ``brainalign.stimuli`` itself.

``formats``
    Real on-disk formats: Praat TextGrids (read and write), the gentle
    ``align.csv`` of Narratives with its ``transcript.txt``, video files.
``timebase``
    The time base above: TR grids, sampling times, word times, Lanczos
    resampling, FIR delays, the canonical HRF, the audio envelope, frames per TR.
``speech``
    Speech synthesis with espeak-ng (through ctypes), timed word by word.
``movie``
    The synthetic movie: a spoken dialogue, shots of packaged images, rendering.
"""

from .formats import (
    GENTLE_WORD,
    NONWORDS,
    read_align_csv,
    read_textgrid,
    read_video,
    read_wav,
    write_movie,
    write_textgrid,
    write_wav,
)
from .movie import (
    DIALOGUE,
    EXPOSURE,
    MOVIE_FACES,
    MOVIE_IMAGES,
    MOVIE_VOICES,
    Movie,
    dialogue_episodes,
    make_movie,
    movie_image,
    on_screen_at,
    read_dialogue,
    render_shots,
    speaking_at,
)
from .speech import Speech, synthesize_speech
from .timebase import (
    SAMPLE_AT,
    audio_envelope,
    convolve_hrf,
    frames_per_tr,
    hrf,
    lanczos_resample,
    make_delayed,
    sample_times,
    tr_times,
    word_times,
)

__all__ = [
    "DIALOGUE",
    "EXPOSURE",
    "GENTLE_WORD",
    "MOVIE_FACES",
    "MOVIE_IMAGES",
    "MOVIE_VOICES",
    "Movie",
    "NONWORDS",
    "SAMPLE_AT",
    "Speech",
    "audio_envelope",
    "convolve_hrf",
    "dialogue_episodes",
    "frames_per_tr",
    "hrf",
    "lanczos_resample",
    "make_delayed",
    "make_movie",
    "movie_image",
    "on_screen_at",
    "read_align_csv",
    "read_dialogue",
    "read_textgrid",
    "read_video",
    "read_wav",
    "write_movie",
    "write_wav",
    "render_shots",
    "sample_times",
    "speaking_at",
    "synthesize_speech",
    "tr_times",
    "word_times",
    "write_textgrid",
]
