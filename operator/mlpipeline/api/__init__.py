"""The MLPipeline v1alpha1 API: pydantic models, manifest loading, CRD generation."""
