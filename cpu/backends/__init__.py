"""Every implementation of the ``ops`` vocabulary (``cpu.ops.Ops``), each declaring that Protocol.

- ``python``: each instruction's semantics as Python source; a block is compiled once and run by
  ``cpu.interp`` (the reference backend, always available);
- ``symbolic``: the same semantics as readable micro-ops (``emu explain``).

The persistent code cache's version key (``cpu.codecache``) covers every module here.
"""
