"""The course's tooling, on top of the teaching library: it imports :mod:`course_lib`, never the reverse.

- :mod:`course_lib.tools.notebooks`: build the student notebooks from ``solutions/`` (``make notebooks``);
- :mod:`course_lib.tools.grading`: nbgrader autograding of submissions (``make grade``, ``make check``);
- :mod:`course_lib.tools.workbook`: run every solution notebook headless and report (``make workbook``);
- :mod:`course_lib.tools.report`: :func:`~course_lib.tools.report.record`, which tags a measured figure in a
  notebook for the workbook report.
"""
