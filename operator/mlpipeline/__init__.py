"""mlpipeline-operator."""
