"""Sub-command groups of the robustrl CLI (each a typer app that cli.py adds)."""
