"""`from shinka.core import run_shinka_eval`: ShinkaEvolve's evaluation helper, as evomcp provides it."""

from .wrap_eval import load_program, run_shinka_eval, save_json_results

__all__ = ["load_program", "run_shinka_eval", "save_json_results"]
