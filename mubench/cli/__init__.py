"""The command line (`mubench ...`, typer). The library never imports this package.

`app` (the main app and `run`, `results`, `plot`, `list`, `data`), `submit` (`submit`,
`validate`, `schema`, `leaderboard-data`), `board` (`leaderboard`, `export`), `stream`
(`mubench stream ...`) and `common` (the option types, consoles and checks the command modules
share, so that none of them imports another's app).
"""


def main() -> None:
    """The `mubench` console script: imports the app only when it runs."""
    from mubench.cli.app import main as run_app

    run_app()
