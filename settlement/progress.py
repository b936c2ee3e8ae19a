"""What a run tells whoever shows its progress: the stage it is in; while it reads the
usage logs, how many files and rows it has read so far; and in a stage that goes a
part at a time, how many parts are done.

The engine reports and never draws: the command line draws a bar on a terminal
(cli.StageProgress), the tests record what they are told, and a run that nobody
watches is told `SILENT`, which does nothing.
"""

from __future__ import annotations

from fractions import Fraction


class Progress:
    """A listener to a run. This one does nothing; a listener overrides what it shows."""

    def stage(self, name: str) -> None:
        """A stage starts (`name` says what it does, in a few words)."""

    def reading(self, files_done: Fraction, files: int, rows_read: int) -> None:
        """While the usage logs are read: the files read so far, of `files`, where a file
        read in windows (Parquet) counts the part of it that is done (exact, as every
        figure of the engine: 2 and 3/10 files), and the rows read so far. Told after each
        window or file, in the order they are read, and while a CSV or JSON Lines file is
        read (its rows are validated in one query), whenever more of its rows are written:
        the files read so far then stay those before it."""

    def step(self, done: int, total: int, unit: str) -> None:
        """Within a stage that goes a part at a time: `done` parts of `total` are done, each
        one of `unit` (say, 12 of 40 "partitions")."""


SILENT = Progress()
