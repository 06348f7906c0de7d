"""The pieces of ``benchmarks/services_load.py``: the stack on loopback, the load generator, the
faults and the final check of the databases (``tally`` is pure, so its verdicts are tested)."""
