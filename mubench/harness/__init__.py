"""The harness: what turns one run's config into one record.

`splits` draws the deterministic, checksummed split of a (task, scenario, seed); `models` and
`training` build and train the original and oracle models, which `artifacts` caches by content;
`runner` (`Harness`) prepares a run, hands the method its declared data, times it and evaluates
it; `record` is the typed result (with `provenance` and `memory` measured alongside). Nothing in
this package knows about sweeps, stores, submissions or the command line.
"""
