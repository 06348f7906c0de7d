"""services/ is a package so its tests import as ``services.tests.*``.

(No clash with the repository-level ``tests`` package.)
"""
