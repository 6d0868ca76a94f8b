"""Accuracy beside speed: the quality protocol (splits, metrics, evaluation, report).

:mod:`~recsys_fast.quality.evaluate` documents the protocol; ``recsys-fast eval`` runs it.
"""
