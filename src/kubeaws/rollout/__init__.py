"""Rolling replacement of a running cluster's instances (`kubeaws rollout`, and `apply` after it updated
launch templates): read what is outdated from AWS (`inventory`), order the replacements (`planner`), run them
with drains, waits and validation (`runner`), through the AWS side (`aws_ops`) and the Kubernetes side
(`kube_ops`). Called by the CLI and the Python API."""
