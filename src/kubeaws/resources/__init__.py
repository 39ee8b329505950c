"""AWS resource kinds: one module per kind, all with the interface of `resources.base.Kind`."""
