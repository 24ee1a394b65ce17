"""ShinkaEvolve's model client is not provided: evaluations run without network, so they cannot call models."""

raise ImportError(
    "shinka.llm (ShinkaEvolve's model client) is not available inside evomcp's sandbox: evaluators run "
    "without network and without API keys, so an evaluator cannot call a model. Score the program without "
    "a model, or install ShinkaEvolve (pip install shinka-evolve) and run the task with ShinkaEvolve itself"
)
