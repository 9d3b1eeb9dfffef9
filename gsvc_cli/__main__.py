from gsvc_cli.cli import main

main()
