"""
JSON log output for twistd: one JSON object per event, every field kept.

    twistd -n --logger=uppercase.jsonlog.stdout uppercase

Each event carries its fields (C{host}, C{port}, C{peer}, C{size},
C{received}, C{reason}, ...) besides C{log_format} and C{log_time}; read them
back with L{twisted.logger.eventsFromJSONLogFile} or any JSON tool.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver

__all__ = ["stdout"]


def stdout() -> ILogObserver:
    """
    An observer writing JSON lines to standard output (a log observer
    factory for C{twistd --logger}).
    """
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
