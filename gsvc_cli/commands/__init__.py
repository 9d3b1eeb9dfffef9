"""One module per subcommand. Each exposes `register(app)`; cli.py lists the ones that work."""
