"""The harness behind ``ipckit bench``: every transport and its peers, side by side.

Modules, one job each: ``contender`` (what is measured), ``raw``, ``peers`` and
``ipckit_contenders`` (the contenders), ``registry`` (their order), ``workloads``
(what is sent), ``child`` (the producer and consumer loops and their checks),
``runner`` (one round in real processes, bounded), ``placement`` (CPU pinning),
``session`` (rounds interleaved across contenders), ``stats``, ``results``,
``report`` (the table), ``jsonreport`` and ``schema.json`` (``--json``), ``plot``
(``--plot``), ``progress`` (the bar) and ``command`` (the CLI arguments).

Heavier scenarios in ``benchmarks/`` import from here; nothing here is public API.
"""
