"""Prompt templates (owned by the protocol/templates work; placeholder until it lands)."""
