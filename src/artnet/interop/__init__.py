"""Interoperability with the original Caffe release (network definitions and weights) and exports."""
