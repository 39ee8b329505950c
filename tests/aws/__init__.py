"""The opt-in end-to-end suite on a REAL AWS account (tests/aws/README.md): it creates two kubeaws clusters,
proves that they boot and work, breaks one control-plane member of the three-member one, and deletes both.

Every test of test_real_cluster.py is marked `aws` (deselected unless `pytest -m aws`) and skipped unless
KUBEAWS_AWS_E2E=1 and usable AWS credentials are present. test_helpers.py (not marked) proves the pure helpers
here in the normal suite, with no network.
"""
