"""evomcp: LLM-driven program evolution exposed as Model Context Protocol tools."""

__version__ = "0.1.0"
