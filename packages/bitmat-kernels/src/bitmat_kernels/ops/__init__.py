"""One folder an op: `reference.py` (pure torch: the CPU path and the test oracle), `kernel.py`
(private Triton kernels and their launchers), `__init__.py` (custom op and public function)."""
