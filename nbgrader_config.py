"""nbgrader configuration for instructors, read when nbgrader runs from this folder.

The course tree lives in build/nbgrader (made by `make notebooks`): source/ holds the notebooks with
solutions (generated from solutions/*.py), release/ the student versions.
"""

import os

here = os.path.dirname(os.path.abspath(__file__))
c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "embeddings-course"
c.CourseDirectory.root = os.path.join(here, "build", "nbgrader")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "build", "nbgrader", "gradebook.db")
# Cells encode data and train models: allow 10 minutes a cell. `make grade` sets its own limit.
c.Execute.timeout = 600
c.Execute.kernel_name = "embeddings-course"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
