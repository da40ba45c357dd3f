"""Fetching the real datasets: a plan of files, a small downloader, and checks.

``brainalign data fetch NAME [--subjects ...] [--runs ...]`` downloads only the
files a selection needs, into the dataset's folder in the data home
(``brainalign.config.data_home()``):

==============  =============================================================  ==========
dataset         source (``--via``; the first is the default)                    access
==============  =============================================================  ==========
``lebel2023``   openneuro-py; OpenNeuro's S3 bucket over HTTP; DataLad           open (CC0)
``narratives``  DataLad (``datasets.datalad.org/labs/hasson/narratives``)        open
``neuromod``    DataLad, in the clone a user installs after signing up           sign-up
==============  =============================================================  ==========

What a selection needs is written in a committed file manifest
(``resources/manifests/files/<name>.json``): file patterns per subject and
run, each subject's runs, a default selection, and the size and md5 of the
files where they are known (from the git-annex keys of the datasets). Every
file is downloaded into a staging folder (``.partial/`` inside the dataset
folder; DataLad works in its own annex instead), checked (size and md5 where
known, and its format: an HDF5 signature, parseable JSON, no HTML error page),
and only then renamed into place: an interrupted download leaves no file in
place, and the next fetch resumes it. Files already present and valid are
skipped; a successful md5 check is remembered (in the data home's
``.verified/``) until the file's size or time stamp changes. Offline
(``brainalign.config.is_offline()``), or without access rights, a fetch that
has anything to download fails at once, naming the command to run and the
folder to fill. ``brainalign data verify NAME`` reports what is present,
missing or corrupt.

The network is reached only through a transport, which tests replace:
``HTTPTransport`` (urllib, resumable with Range requests, injectable
``opener``), ``OpenNeuroTransport`` (openneuro-py, injectable ``download``) and
``DataLadTransport`` (the ``datalad`` command, injectable ``runner``).

Modules: ``manifest`` (manifests, plans, the fetch command), ``transports`` and ``download``
(checks, :func:`fetch`, :func:`verify`).
"""

from .download import FetchReport, FileStatus, fetch, md5sum, verify
from .manifest import FETCHABLE, FILE_MANIFESTS, STAGING, FetchError, FileSpec, Plan, command, dataset_root, file_manifest, plan
from .transports import DataLadTransport, HTTPTransport, OpenNeuroTransport, Transport

__all__ = [
    "FetchError",
    "FileSpec",
    "Plan",
    "FileStatus",
    "FetchReport",
    "Transport",
    "HTTPTransport",
    "OpenNeuroTransport",
    "DataLadTransport",
    "FETCHABLE",
    "FILE_MANIFESTS",
    "STAGING",
    "file_manifest",
    "dataset_root",
    "plan",
    "verify",
    "fetch",
    "command",
    "md5sum",
]
