"""The HTML report (`photoclass report`, `photoclass evaluate --report`): one self-contained
page with training curves, confusion matrix, per-class scores, ROC, the most confident
mistakes, Grad-CAM heat maps and, for collected data, what the dataset holds."""

from photoclass.reporting.report import write_report

__all__ = ["write_report"]
