"""Datasets, generators and label definitions."""
