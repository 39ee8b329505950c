"""The registry-wide resource-kind contract tests' machinery (tests/test_kinds_contract.py): `harness` (contexts
on a fake clock, call recording, in-use fault injection, tag extraction, which in-use answers AWS documents
for each delete call) and one module of scenarios per kind family building each kind's prerequisites and
desired resource on the moto server (`network`, `compute`, `identity`, `eks`), gathered in `scenarios`."""
