"""The command line: `app.py` holds the Typer app and the helpers the command modules share; the
command modules (plan.py, commands.py, owners.py) import it, never the reverse; main.py, the
entry point, imports them all."""
