"""Evaluation on a labelled folder (`evaluate`) and the numbers it reports (`metrics`)."""
