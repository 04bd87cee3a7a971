"""The web dashboard (``interphase dashboard``): jobs, structures, models, campaigns.

FastAPI + Jinja2 templates + htmx, with Plotly.js and 3Dmol.js served from the
package (nothing is fetched from the network). Reads are open; every write
needs the dashboard token in the ``X-Interphase-Token`` header
(:mod:`interphase.dashboard.security`). Start it with
:func:`interphase.dashboard.app.create_app`.
"""
