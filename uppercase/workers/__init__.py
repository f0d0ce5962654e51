"""
C{--workers}: the supervisor, its workers, the sockets they share, and their metrics.
"""
