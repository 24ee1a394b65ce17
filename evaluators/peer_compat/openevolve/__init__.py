"""evomcp's stand-in for the parts of OpenEvolve that task evaluators import.

Only on the sys.path of sandboxed evaluations, after the installed packages: a real
OpenEvolve, where installed, is imported instead.
"""

from .evaluation_result import EvaluationResult

__all__ = ["EvaluationResult"]
