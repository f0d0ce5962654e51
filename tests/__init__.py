"""Tests for uppercase."""
