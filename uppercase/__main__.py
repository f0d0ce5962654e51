"""
C{python -m uppercase [OPTIONS]}: the server in the foreground, as
C{twistd -n --pidfile= uppercase [OPTIONS]} runs it (C{--help} lists the
options).  C{python -m uppercase client [OPTIONS]}: the client, as
C{uppercase-client [OPTIONS]}.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run the server or, after C{client}, the client, with C{argv} (the
    command line's by default).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # Each branch imports what it runs and nothing of the other's.
    if args[:1] == ["client"]:
        from uppercase.cli.command import run as runClient

        sys.argv = ["uppercase-client", *args[1:]]
        runClient()
        return
    from uppercase.cli.earlysignals import ignoreUntilInstalled

    ignoreUntilInstalled()
    from twisted.scripts.twistd import run as runTwistd

    from uppercase.cli.options import MODULE_COMMAND

    sys.argv = [MODULE_COMMAND, "--nodaemon", "--pidfile=", "uppercase", *args]
    runTwistd()


if __name__ == "__main__":
    main()
