"""Models from storage: s3://, gs://, az:// / abfs:// and https:// URIs fetched once into a local cache.

    uri.py        which strings are URIs, what they name, the form that may be shown (no credentials)
    secrets.py    scrub credentials out of any text before it is shown
    cache.py      the cache folder: one entry per URI, one complete copy per version, atomic publish, lock
    remote.py     list and download: fsspec (s3fs, gcsfs, adlfs: the ``storage`` extra) or the stdlib for http(s)
    fetch.py      one URI: list, compare with the cache, download what changed, publish whole
    localize.py   what ``prebake serve`` calls: fetch in a child process, get local paths back
    __main__.py   that child process: ``python -m prebake.storage URI...`` prints JSON

It imports nothing from the server or the CLI; the cloud libraries are imported only when a URI is fetched,
and only in the child process, so the server that forks its workers afterwards holds none of their
threads, sockets or memory.
"""
