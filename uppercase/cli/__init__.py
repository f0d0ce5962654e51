"""
The command-line layer, wiring only: the twistd plugins' options and makers, the uppercase-client command, option checks, signals, exit status.
"""

from __future__ import annotations
