"""One module per command; `cli.main` registers them."""
