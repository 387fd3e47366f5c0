"""Development benchmarks, not tests: numbers, not pass/fail (`make bench`).

`speed` (`python -m mubench.bench.speed`: the training loop's overhead, evaluation cost,
executors), `training` (`python -m mubench.bench.training`: training speed and accuracy per task,
method runs, the leaderboard's projected cost) and `faithfulness` (`python -m
mubench.bench.faithfulness`: published rows reproduced through the harness).
"""
