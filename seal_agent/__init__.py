"""seal-agent: persistent agent memory that moves from the context window into the weights."""
__version__ = "0.1.0"
