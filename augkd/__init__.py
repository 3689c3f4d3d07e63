"""augkd: a data-augmentation-centric knowledge-distillation benchmark."""

__version__ = "0.1.0"
