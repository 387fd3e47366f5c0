"""Running many runs: `sweep` (grids of run configs, resumable), `executors` (local, worker
processes, Ray), `sandbox` (the isolated executor for untrusted methods), `loading` (a method
class from a file or an entry point) and `store` (the SQLite store the driver alone writes).
"""
