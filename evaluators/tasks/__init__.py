"""Built-in benchmark tasks: seed programs and their descriptions live beside this file."""
