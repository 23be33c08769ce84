"""Keep a block of notebook code silent: what nbgrader's test cells need.

nbgrader gives no points to a test cell that writes to stderr, and the trainers and miners of sentence-transformers
write there (progress bars, warnings, log lines) even when asked to be quiet. :class:`quiet` captures all of it.
"""

from __future__ import annotations

import contextlib
import io
import warnings


class quiet(contextlib.ExitStack):
    """Silence a block: stdout, stderr, rich outputs (tqdm's notebook widgets), warnings and transformers' logging.

    What was printed is kept in ``.text``; the logging level and warning filters are restored on exit.

    Examples
    --------
    >>> import sys
    >>> with quiet() as q:
    ...     print("hidden")
    ...     print("also hidden", file=sys.stderr)
    >>> q.text
    'hidden\\nalso hidden\\n'
    """

    def __enter__(self):
        super().__enter__()
        self.buffer = io.StringIO()
        try:
            from IPython import get_ipython
            from IPython.utils.capture import capture_output
        except ImportError:  # pragma: no cover - IPython ships with the course
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            self.enter_context(capture_output())  # rich outputs in a notebook
        self.enter_context(contextlib.redirect_stdout(self.buffer))
        self.enter_context(contextlib.redirect_stderr(self.buffer))
        self.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        try:
            import transformers
        except ImportError:  # pragma: no cover - transformers ships with the course
            return self
        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        self.callback(transformers.logging.set_verbosity, level)
        return self

    @property
    def text(self) -> str:
        """Everything printed to stdout or stderr inside the block."""
        return self.buffer.getvalue()
