"""Helpers shared by every test folder: the synthetic classification task and the tiny run
settings (``support.task``), processes and ports (``support.processes``), a real ``floss serve``
driven over HTTP (``support.serve``), and a finished study made without training
(``support.studies``).

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so any test imports them as
``from support.task import write_task`` under every pytest import mode."""

from __future__ import annotations
