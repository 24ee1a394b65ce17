"""How a candidate is run and scored: task contract, sandbox, executor, trusted scorers."""
