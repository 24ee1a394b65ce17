"""evomcp's stand-in for the parts of ShinkaEvolve that task evaluators import.

Only on the sys.path of sandboxed evaluations, after the installed packages: a real
ShinkaEvolve, where installed, is imported instead.
"""
