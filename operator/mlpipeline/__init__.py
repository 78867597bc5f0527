"""mlpipeline-operator: one MLPipeline resource from data to a canary-served model."""

__version__ = "0.1.0"
