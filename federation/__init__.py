"""FLoSS on Flower: a ServerApp, a ClientApp and ``FlossStrategy`` that run floss-train's round.

Needs the ``flower`` extra (``pip install -e '.[flower]'``). ``federation.config`` and
``federation.appdir`` import no flwr (the tuner's export writes app folders without it).
See docs/federation.md.
"""
