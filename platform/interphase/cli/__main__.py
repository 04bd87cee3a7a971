"""``python -m interphase.cli``: the ``interphase`` command without its script."""

from interphase.cli import app

app(prog_name="interphase")
