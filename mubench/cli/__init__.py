"""The command line (`mubench ...`, typer). The library never imports this package.

`app` (the main app and `run`, `results`, `plot`, `list`, `data`), `submit` (`submit`,
`validate`, `schema`, `leaderboard-data`), `board` (`leaderboard`, `export`), `stream`
(`mubench stream ...`), `options` and `common` (option types, consoles and helpers the command
modules share).
"""


def main() -> None:
    """The `mubench` console script: imports the app only when it runs."""
    from mubench.cli.app import main as run_app

    run_app()
