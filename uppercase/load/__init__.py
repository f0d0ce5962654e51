"""
The load mode: payloads, schedules, the run, its counts, results, reports and the prober service.
"""

from __future__ import annotations
