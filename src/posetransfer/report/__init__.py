"""Reports people read: self-contained HTML pages, loss curves and figures.

- :mod:`~posetransfer.report.report_data`, :mod:`~posetransfer.report.html_report`,
  :mod:`~posetransfer.report.html_text`: the HTML report (its data, the page, text helpers);
- :mod:`~posetransfer.report.curves`: loss curves from a run's ``stats.jsonl``.

This package imports nothing itself.
"""
