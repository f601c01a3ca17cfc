"""How the training command fails: its name in messages, its exit codes and the errors it reports in one line.

    0    done
    2    a usage or data error: a bad option, an unusable --out (a file, not creatable, not writable, in
         use, holding another run), a data or checkpoint file that cannot be read (checked before
         training; a file that fails mid-epoch stops the run after saving interrupted.ckpt)
    3    training stopped on a non-finite loss or weights
    4    an output could not be written (disk full: the previous checkpoint stays intact)
    130  interrupted (Ctrl-C)

``minidl.train`` (the command line) and ``minidl.training.run`` (one run) both import these from here;
``EXIT_CODES_HELP`` is the same list as ``--help`` prints it.
"""
PROG = "minidl-train"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DATA = EXIT_USAGE        # a data file that breaks mid-epoch is a data error too, found late
EXIT_NONFINITE = 3
EXIT_WRITE = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = [
    "exit codes (each error is one line naming the file or option):",
    f"  {EXIT_OK} done; {EXIT_USAGE} usage or data error (bad option or --out, unreadable data or checkpoint; "
    "a file",
    f"  failing mid-epoch saves interrupted.ckpt first); {EXIT_NONFINITE} non-finite loss or weights; "
    f"{EXIT_WRITE} an output",
    f"  could not be written (disk full; the previous checkpoint is intact); {EXIT_INTERRUPTED} interrupted "
    "(Ctrl-C)",
]


class UsageError(ValueError):
    """A request the command cannot carry out: reported in one line, exit code 2."""


class OutputWriteError(OSError):
    """An output file of the run could not be written (exit code 4); the earlier version is intact."""
