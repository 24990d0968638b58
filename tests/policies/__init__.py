"""Tests of compliance policies."""
