# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (embeddings-course)
#     language: python
#     name: embeddings-course
# ---

# %% [markdown]
# # 90 · A tiny assignment for the grader's own tests (tests/test_grading.py)
#
# Three exercises that need nothing but Python, so that a hostile submission is graded in seconds.

# %%
import math

# %% nbgrader={"grade": false, "grade_id": "add", "locked": false, "schema_version": 3, "solution": true}
def add(a, b):
    """a + b"""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "add_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
assert add(1, 2) == 3
### BEGIN HIDDEN TESTS
assert add(-1, 1) == 0
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "hypot", "locked": false, "schema_version": 3, "solution": true}
def hypot(a, b):
    """The length of the hypotenuse."""
    ### BEGIN SOLUTION
    return math.sqrt(a * a + b * b)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "hypot_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
assert hypot(3, 4) == 5
### BEGIN HIDDEN TESTS
assert hypot(0, 0) == 0
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "mean", "locked": false, "schema_version": 3, "solution": true}
def mean(xs):
    """The arithmetic mean of a non-empty list."""
    ### BEGIN SOLUTION
    return sum(xs) / len(xs)
    ### END SOLUTION


# %%
# a narrative cell that calls the learner's function (a hang here is blamed on `mean`)
print("the mean of 1..4 is", mean([1, 2, 3, 4]))

# %% nbgrader={"grade": true, "grade_id": "mean_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
assert mean([1, 2, 3]) == 2
### BEGIN HIDDEN TESTS
assert mean([5]) == 5
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": true, "grade_id": "why_mean", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# **Question (graded by hand).** Why does `mean` refuse an empty list instead of returning 0?
#
# ### BEGIN SOLUTION
# The mean of no numbers is undefined; 0 would be a silent wrong answer that looks like data.
# ### END SOLUTION
