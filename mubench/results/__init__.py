"""Results: pure functions from records to tables and figures, no I/O of the store inside.

`aggregate` (records to a frame, means with 95 % intervals over seeds, setting selection),
`tradeoff` (Pareto fronts and hypervolume), `ranking` (per-cell ranks and mean ranks),
`report` (rich and text tables) and `plots` (matplotlib figures).
"""
