"""brainalign: language models and the brain, one library for six studies.

The library is organised by concern (see the book's "Library" page):
``config``, ``cache``, ``stimuli``, ``datasets``, ``simulate``, ``models``,
``features``, ``encoding``, ``ceiling``, ``stats``, ``plotting``, ``cli``.
"""

__version__ = "0.1.0"
