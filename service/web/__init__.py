"""The page at ``/``: server-rendered HTML; one small script only refreshes the studies.

A plan form (GET, so a plan is a link you can share), the plan's header lines, the short list
(or every feasible row, the short list marked) as a table whose rows are numbered like their
points in the plot, downloads of the plan (floss-plan's CSV and JSON), and every feasible
configuration as an inline SVG (bytes per round against rounds affordable, log-log, a legend,
the short list numbered with labels placed so they do not overlap). Then the studies: a form
to submit one (the API's checks), each study's state, progress, running trial, recommendation,
stop and resume buttons, and its trials with the recommended one marked. The studies section is
also served alone (``/page/studies``); the page's script fetches it every few seconds, so
progress refreshes itself; without the script the page works the same, refreshed by hand.
"""

from __future__ import annotations

from service.web.forms import errors_html, plan_form, study_form
from service.web.layout import page
from service.web.plan_view import plan_section
from service.web.studies_view import studies_html

__all__ = ["errors_html", "page", "plan_form", "plan_section", "studies_html", "study_form"]
