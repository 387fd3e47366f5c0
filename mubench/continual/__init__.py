"""Continual learn/unlearn streams: a model receives a sequence of requests, each "learn task t"
or "unlearn task t", over a dataset split into tasks of a few classes each (split-MNIST: five tasks
of two digits). After every request the harness measures each task's test accuracy; the summaries
are the accuracy on the retained tasks, on the unlearned ones (which should fall to chance) and the
relapse of unlearned tasks during later learning ("task relapse", Adhikari, Kumaravelu & Srijith
2025, UnCLe).

Modules: `spec` (frozen stream and task definitions), `task` (the continual-task interface and
registry), `split_mnist` / `split_cifar10` (the tasks), `streams` (per-task sample indices and the
checksummed stream id), `training` (task-incremental loss, training and evaluation), `methods`
(the ContinualMethod interface, its requests and registry), `metrics` and `runner` (a stream run ->
`mubench.harness.record.Record`); the command line, `mubench stream ...`, is mubench.cli.stream.

This package imports nothing heavy at import time, so mounting its command line costs nothing.
"""
