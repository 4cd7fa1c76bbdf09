"""LLM providers behind one small interface (see :mod:`sapphire.agents.llm.base`)."""
