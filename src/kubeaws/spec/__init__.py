"""The spec: YAML file -> validated `ClusterSpec`. See `spec.models` (format) and `spec.load` (entry)."""
