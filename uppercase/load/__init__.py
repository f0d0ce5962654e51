"""
The load mode: payloads, schedules, the run, its counts, results, reports, the prober service, and shards with their exact merge.
"""

from __future__ import annotations
