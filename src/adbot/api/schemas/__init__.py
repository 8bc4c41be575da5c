"""Pydantic request and response schemas (``XCreate``, ``XUpdate``, ``XRead``), separate
from the ORM models.
"""
