"""The leaderboard: `submission` (the schema-checked entry files and their verification),
`entries` (the checks a submitted method passes, and the baselines' own entries), `tables`
(the ranked tables the app and the exports show), `datacard` (the tasks' data cards) and
`listing` (what `mubench list` and `data status` print).
"""
