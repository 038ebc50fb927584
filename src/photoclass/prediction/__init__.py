"""Prediction on new photos (`predict`) over batched, gradient-free forward passes (`inference`)."""
