"""Analyzers: each measures one concern and returns an :class:`AnalyzerResult` (no pass/fail)."""

from prefaudit.analyzers.base import Analyzer, AnalyzerResult, AuditContext, Metric

__all__ = ["Analyzer", "AnalyzerResult", "AuditContext", "Metric"]
