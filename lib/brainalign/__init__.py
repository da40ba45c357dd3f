"""brainalign: language models and the brain, one library for six studies.

The library is organised by concern (see the book's "The library" page):
``config``, ``cache``, ``stimuli``, ``linguistics``, ``spaces``, ``manifests``, ``datasets``, ``fetch``,
``simulate``, ``models``, ``features``, ``encoding``, ``ceiling``, ``stats``,
``probing``, ``encodability``, ``removal``, ``similarity``, ``controls``, ``attribution``, ``instruct``, ``tasks``,
``tuning``, ``plotting``, ``results``, ``runner``, ``launch``, ``sweep``, ``cli``.
"""

__version__ = "0.1.0"
