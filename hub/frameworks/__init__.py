"""Competency frameworks (CASE 1.0/1.1 CFPackages): public reference data skills align to."""
