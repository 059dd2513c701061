"""tokentop: live cost, token and rate-limit monitor for LLM agents."""

from __future__ import annotations

__version__ = "0.1.0"
