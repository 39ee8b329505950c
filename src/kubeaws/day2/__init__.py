"""Day-2 operations that need no plan: find every kubeaws cluster of an account by its tags, without a spec
(`discover`: `kubeaws get clusters`), and set a node group's size now (`scale`: `kubeaws scale`).

Called by the CLI (kubeaws.cli.day2). Reads AWS through the AWS context and the resource kinds' helpers.
"""
