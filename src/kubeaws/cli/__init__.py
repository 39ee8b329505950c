"""The `kubeaws` command line (typer + rich), a thin layer over `kubeaws.api`. Entry point: `main.main`."""
